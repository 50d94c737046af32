"""``exportloss attach``: a detector's ONNX file with fixed-shape NMS appended, written as one file."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from .common import UsageError, console, positive_int


def add_parser(sub) -> None:
    from ..boxes.formats import BOX_FORMATS
    from ..detector_nms.layouts import LAYOUTS, NMS_KINDS

    p = sub.add_parser("attach", help="append fixed-shape NMS to a detector's ONNX file (one file, no plugin)")
    p.add_argument("model", metavar="MODEL.onnx", help="the detector")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="the joined model to write")
    p.add_argument("--layout", required=True, choices=LAYOUTS,
                   help="yolo [B,4+C,N] (YOLOv8/YOLO11), yolo-obj [B,N,5+C] (YOLOv5/v7/X), boxes-scores (two outputs), "
                        "obb [B,4+C+1,N] (ultralytics OBB)")
    p.add_argument("--nms", choices=NMS_KINDS, help="iou or diou (default iou); rotated for --layout obb (its default)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="an NMS option, e.g. iou_thr=0.7, score_thr=0.25, max_det=300, candidates=2000; repeatable")
    p.add_argument("--boxes", metavar="NAME", help="the detector output holding the boxes (the one prediction output of "
                                                   "yolo, yolo-obj and obb); default: found by shape")
    p.add_argument("--scores", metavar="NAME", help="boxes-scores: the scores output; default: found by shape")
    p.add_argument("--box-format", choices=BOX_FORMATS, default="xyxy", help="boxes-scores: format of the boxes (default xyxy)")
    p.add_argument("--num-classes", type=positive_int, metavar="C",
                   help="score rows to use (default: all after the boxes; a segmentation head's mask coefficients follow them)")
    p.add_argument("--batch", type=positive_int, metavar="B", help="batch size; required when the detector's batch is dynamic")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._files import atomic_write
    from ..catalog.graph_options import parse_value
    from ..detection.options import NMSOptions, RotatedNMSOptions
    from ..detector_nms.join import attach
    from ..onnx_graph import default_opset
    from .export import option_texts

    nms = args.nms or ("rotated" if args.layout == "obb" else "iou")
    fields = {field.name: str(field.type) for field in dataclasses.fields(RotatedNMSOptions if nms == "rotated" else NMSOptions)}
    texts = option_texts(args.option)
    unknown = [key for key in texts if key not in fields]
    if unknown:
        raise UsageError(f"--option {unknown[0]}: no such NMS option; the options of --nms {nms} are {', '.join(fields)}")
    output = Path(args.output)
    if output.resolve() == Path(args.model).resolve():
        raise UsageError(f"-o {output}: would overwrite the detector; write the joined model to another file")
    start = time.perf_counter()
    try:
        options = {key: parse_value(key, text, fields[key]) for key, text in texts.items()}
        model = attach(args.model, layout=args.layout, nms=nms, boxes=args.boxes, scores=args.scores,
                       box_format=args.box_format, num_classes=args.num_classes, batch=args.batch, **options)
    except (ValueError, TypeError) as err:
        raise UsageError(str(err).splitlines()[0]) from None
    seconds = time.perf_counter() - start
    try:
        atomic_write(output, model.SerializeToString())
    except OSError as err:
        raise UsageError(f"-o {output}: cannot write there ({err.strerror or err})") from None
    outputs = ", ".join(f"{o.name}[{','.join(str(d.dim_value) for d in o.type.tensor_type.shape.dim)}]" for o in model.graph.output)
    console.print(f"attached {args.layout} + {nms} NMS -> {output}  (opset {default_opset(model)}, IR {model.ir_version}, "
                  f"{seconds:.1f} s; outputs {outputs})", markup=False, soft_wrap=True)
    return 0
