"""A record's Avro decoder as one generated function: the fields read in a straight line, not one closure each.

:func:`schemas.binary.compile_decoder` builds a record decoder from a closure per field, and a closure per union
branch under it: a TrainingExample took about 25 Python calls (a string field alone is three), which was about
half of its decode in the train worker (issue 16). Here the record's fields are read by generated code: strings,
longs, booleans, doubles and the usual union branches of those inline (their one-byte varints without a call),
maps and nested records by their compiled decoders, and anything unusual (a varint longer than a byte, a union
index outside the one-byte form) by the same code the closures run. The result, the positions and every error
(its type, message and field path) are the closures' (``tests/test_schemas_record_decoder.py`` compares them on
valid and corrupted bytes).
"""

from __future__ import annotations

from collections.abc import Callable
from math import isfinite
from typing import Any

from schemas.validation import Invalid

# Kinds read inline; a union branch of another kind (a map) is read by its compiled decoder.
_INLINE = ("null", "boolean", "int", "long", "double", "string", "bytes")


def schema_kind(schema: Any) -> str:
    """An Avro schema's kind: a primitive's name, ``"union"``, or a complex type's ``type``."""
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return str(schema["type"])


def _read(kind: str, var: str, ind: str) -> list[str]:
    """Lines reading one value of an inline ``kind`` at ``pos`` into ``var`` (``pos`` moves past it)."""
    if kind == "null":
        return [f"{ind}{var} = None"]
    if kind == "boolean":
        return [
            f"{ind}b = data[pos]",
            f"{ind}if b > 1:",
            f'{ind}    raise Corrupt(f"invalid boolean byte {{b}}")',
            f"{ind}{var} = b == 1",
            f"{ind}pos += 1",
        ]
    if kind == "double":
        return [
            f"{ind}({var},) = unpack_double(data, pos)",
            f"{ind}if not isfinite({var}):",
            f"{ind}    raise Invalid(non_finite({var}))",
            f"{ind}pos += 8",
        ]
    varint = [
        f"{ind}b = data[pos]",
        f"{ind}if b < 0x80:",
        f"{ind}    n = (b >> 1) ^ -(b & 1)",
        f"{ind}    pos += 1",
        f"{ind}else:",
        f"{ind}    n, pos = read_long(data, pos)",
    ]
    if kind == "long":
        return [*varint, f"{ind}{var} = n"]
    if kind == "int":
        return [
            *varint,
            f"{ind}if not -(2**31) <= n < 2**31:",
            f'{ind}    raise Corrupt(f"int {{n}} out of range")',
            f"{ind}{var} = n",
        ]
    # string and bytes: as _dec_raw (the same checks in the same order)
    return [
        *varint,
        f"{ind}end = pos + n",
        f"{ind}if n < 0:",
        f'{ind}    raise Corrupt(f"negative length {{n}}")',
        f"{ind}if end > len(data):",
        f'{ind}    raise IndexError("data ends inside a string or bytes value")',
        f"{ind}{var} = data[pos:end]" + ('.decode("utf-8")' if kind == "string" else ""),
        f"{ind}pos = end",
    ]


def _may_be_invalid(schema: Any) -> bool:
    """Whether reading ``schema`` can raise :class:`Invalid` (a non-finite double somewhere in it)."""
    kind = schema_kind(schema)
    if kind == "union":
        return any(_may_be_invalid(b) for b in schema)
    return kind not in ("null", "boolean", "int", "long", "string", "bytes")


def compile_record_decoder(
    schema: dict[str, Any],
    compile_decoder: Callable[[Any], Any],
    primitives: dict[str, Any],
    span: str | None = None,
) -> Any:
    """``decode(data, pos) -> (dict, new_pos)`` for a record ``schema``; ``compile_decoder`` compiles the parts
    read by call (maps, nested records, the slow path of each union); ``primitives``: :mod:`schemas.binary`'s
    ``Corrupt``, ``read_long``, ``non_finite`` and ``unpack_double`` (passed in: binary imports this module).

    With ``span`` (a field name), ``decode(data, pos) -> (dict, new_pos, start, end)``: also where that field's
    bytes start and end in ``data`` (the scorer copies a FeatureEvent's ``features`` into its Prediction)."""
    if span is not None and span not in [f["name"] for f in schema["fields"]]:
        raise ValueError(f"record {schema.get('name')!r} has no field {span!r}")
    env: dict[str, Any] = {"Invalid": Invalid, "isfinite": isfinite, **primitives}
    body: list[str] = []
    names: list[str] = []
    for k, field in enumerate(schema["fields"]):
        var, ftype, kind = f"v{k}", field["type"], schema_kind(field["type"])
        names.append(field["name"])
        if field["name"] == span:
            body.append("        span_start = pos")
        if _may_be_invalid(ftype):
            body.append(f"        where = {field['name']!r}")
        if kind in _INLINE:
            body += _read(kind, var, "        ")
        elif kind == "union" and all(schema_kind(b) != "union" for b in ftype):
            env[f"u{k}"] = compile_decoder(ftype)  # the closures' union: the slow and the error paths
            body.append("        t = data[pos]")
            for i, branch in enumerate(ftype):
                body.append(f"        {'if' if i == 0 else 'elif'} t == {2 * i}:")
                body.append("            pos += 1")
                if schema_kind(branch) in _INLINE:
                    body += _read(schema_kind(branch), var, "            ")
                else:
                    env[f"b{k}_{i}"] = compile_decoder(branch)
                    body.append(f"            {var}, pos = b{k}_{i}(data, pos)")
            body.append("        else:")
            body.append(f"            {var}, pos = u{k}(data, pos)")
        else:
            env[f"d{k}"] = compile_decoder(ftype)
            body.append(f"        {var}, pos = d{k}(data, pos)")
        if field["name"] == span:
            body.append("        span_end = pos")
    fields = ", ".join(f"{name!r}: v{k}" for k, name in enumerate(names))
    source = "\n".join(
        [
            "def dec_record(data, pos):",
            "    where = ''",
            "    try:",
            *(body or ["        pass"]),
            "    except Invalid as exc:",
            "        raise Invalid(exc.message, f'.{where}{exc.path}') from None",
            f"    return {{{fields}}}, pos" + (", span_start, span_end" if span is not None else ""),
        ]
    )
    # The source holds no text of the data, only the schema's field names, each as its repr() (a string literal
    # whatever the name), and the schemas are the codec's own files.
    exec(compile(source, f"<record decoder {schema.get('name', '?')}>", "exec"), env)
    decoder = env["dec_record"]
    decoder.source = source  # for a reader wondering what runs (and the tests)
    return decoder
