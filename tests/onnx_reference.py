#!/usr/bin/python3
"""Runs an exported MobileNet-V1 ONNX model with plain numpy, as an independent check.

Implements exactly the operators model/onnx_export.cc emits (Conv with group, strides and
explicit pads; BatchNormalization in inference mode; Clip; GlobalAveragePool; Flatten;
Gemm), in float64. onnx.checker and strict shape inference validate the model first.

Usage: /usr/bin/python3 onnx_reference.py MODEL.onnx INPUT.npy [--output LOGITS.npy]
Prints the output (the logits) as a JSON list of lists on stdout; --output also writes it
as a float32 .npy. Exits non-zero, with the reason on stderr, on any unsupported construct.
"""

import argparse
import json
import sys

import numpy as np
import onnx
from onnx import numpy_helper


class UnsupportedError(Exception):
    pass


def attributes(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def conv(x, w, bias, attrs):
    """x [N, C, H, W], w [M, C / group, kh, kw] -> [N, M, Ho, Wo]."""
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UnsupportedError("Conv auto_pad %r" % attrs["auto_pad"])
    group = attrs.get("group", 1)
    kh, kw = w.shape[2], w.shape[3]
    if list(attrs.get("kernel_shape", [kh, kw])) != [kh, kw]:
        raise UnsupportedError(
            "Conv kernel_shape %r != weights %r" % (attrs["kernel_shape"], w.shape))
    sh, sw = attrs.get("strides", [1, 1])
    dh, dw = attrs.get("dilations", [1, 1])
    top, left, bottom, right = attrs.get("pads", [0, 0, 0, 0])
    n, c, h, wd = x.shape
    m = w.shape[0]
    if c % group or m % group or w.shape[1] != c // group:
        raise UnsupportedError(
            "Conv group %d does not fit input %r, weights %r" % (group, x.shape, w.shape))
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    ho = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    cg, mg = c // group, m // group
    xg = xp.reshape(n, group, cg, xp.shape[2], xp.shape[3])
    wg = w.reshape(group, mg, cg, kh, kw)
    out = np.zeros((n, group, mg, ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = xg[:, :, :, i * dh: i * dh + sh * (ho - 1) + 1: sh,
                       j * dw: j * dw + sw * (wo - 1) + 1: sw]
            out += np.einsum("ngchw,gmc->ngmhw", patch, wg[:, :, :, i, j])
    out = out.reshape(n, m, ho, wo)
    if bias is not None:
        out += bias.reshape(1, m, 1, 1)
    return out


def run_node(node, values):
    attrs = attributes(node)
    inputs = [values[name] if name else None for name in node.input]
    op = node.op_type
    if op == "Conv":
        return conv(inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None, attrs)
    if op == "BatchNormalization":
        if attrs.get("training_mode", 0):
            raise UnsupportedError("BatchNormalization training_mode")
        x, scale, b, mean, var = inputs
        shape = (1, -1) + (1,) * (x.ndim - 2)
        eps = attrs.get("epsilon", 1e-5)
        normalized = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
        return normalized * scale.reshape(shape) + b.reshape(shape)
    if op == "Clip":
        lo = inputs[1] if len(inputs) > 1 and inputs[1] is not None else -np.inf
        hi = inputs[2] if len(inputs) > 2 and inputs[2] is not None else np.inf
        return np.clip(inputs[0], lo, hi)
    if op == "GlobalAveragePool":
        return inputs[0].mean(axis=tuple(range(2, inputs[0].ndim)), keepdims=True)
    if op == "Flatten":
        axis = attrs.get("axis", 1)
        x = inputs[0]
        return x.reshape(int(np.prod(x.shape[:axis])), -1)
    if op == "Gemm":
        a, b = inputs[0], inputs[1]
        if attrs.get("transA", 0):
            a = a.T
        if attrs.get("transB", 0):
            b = b.T
        y = attrs.get("alpha", 1.0) * (a @ b)
        if len(inputs) > 2 and inputs[2] is not None:
            y = y + attrs.get("beta", 1.0) * inputs[2]
        return y
    raise UnsupportedError("operator %s" % op)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("--output", help="also write the logits here as float32 .npy")
    args = parser.parse_args()

    model = onnx.load(args.model)
    onnx.checker.check_model(model)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    for opset in model.opset_import:
        if opset.domain not in ("", "ai.onnx"):
            raise UnsupportedError("opset domain %r" % opset.domain)

    graph = model.graph
    values = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in values]
    if len(inputs) != 1:
        raise UnsupportedError("%d graph inputs, 1 expected" % len(inputs))
    x = np.load(args.input)
    declared = [d.dim_value if d.HasField("dim_value") else None
                for d in inputs[0].type.tensor_type.shape.dim]
    if len(declared) != x.ndim or any(
            d is not None and d != s for d, s in zip(declared, x.shape)):
        raise UnsupportedError(
            "input shape %r does not match the declared %r" % (x.shape, declared))
    values[inputs[0].name] = x.astype(np.float64)

    for node in graph.node:
        if len(node.output) != 1:
            raise UnsupportedError("%s with %d outputs" % (node.op_type, len(node.output)))
        values[node.output[0]] = run_node(node, values)

    logits = values[graph.output[0].name]
    if args.output:
        np.save(args.output, logits.astype(np.float32))
    json.dump(logits.tolist(), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    try:
        main()
    except (UnsupportedError, onnx.checker.ValidationError,
            onnx.shape_inference.InferenceError) as e:
        sys.stderr.write("onnx_reference.py: %s: %s\n" % (type(e).__name__, e))
        sys.exit(2)
