"""Prototxt text to a NetParameter, with protobuf's text_format.

Prototxts from Caffe forks carry fields outside BVLC's schema (CMU's ``cpm_transform_param``,
for example). They still load: the text is parsed with unknown fields skipped, and each layer
that had any keeps its raw text and the names of the fields posebridge did not understand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from google.protobuf import text_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from posebridge.errors import LimitExceededError, PrototxtSyntaxError
from posebridge.limits import DEFAULT_LIMITS, Limits
from posebridge.prototxt import caffe_pb2
from posebridge.prototxt.budget import check_prototxt_text
from posebridge.prototxt.files import read_file_bytes


@dataclass
class TopLevelEntry:
    """One top-level field of the prototxt: its name, text and the unknown fields inside it."""

    field: str
    text: str
    start_line: int
    unknown_fields: list[str] = field(default_factory=list)


@dataclass
class ParsedPrototxt:
    """A parsed prototxt: the net, plus the raw text and unknown fields of each layer entry."""

    net: caffe_pb2.NetParameter
    source: str
    layer_texts: list[TopLevelEntry]
    top_level_unknown: list[str]
    warnings: list[str]


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise PrototxtSyntaxError(
            f"not UTF-8 text (byte {error.start}); is this a binary caffemodel?", file=source) from None


def _syntax_error(error: text_format.ParseError, source: str) -> PrototxtSyntaxError:
    line, column = error.GetLine(), error.GetColumn()
    message = str(error)
    # text_format prefixes "line:col : "; keep only the message itself.
    if line is not None and column is not None:
        prefix = f"{line}:{column} : "
        if message.startswith(prefix):
            message = message[len(prefix):]
        location = f"{source}:{line}:{column}"
    else:
        location = source
    return PrototxtSyntaxError(f"{location}: {message}")


class _Walker:
    """Walks text_format tokens to find top-level entries and fields outside the schema."""

    def __init__(self, text: str, limits: Limits) -> None:
        self.lines = text.splitlines(True)
        self.tokenizer = text_format.Tokenizer(self.lines)
        self.limits = limits

    def _pos(self) -> tuple[int, int]:
        return self.tokenizer._line, self.tokenizer._column  # noqa: SLF001 (token start)

    def _slice(self, start: tuple[int, int], end: tuple[int, int]) -> str:
        (l0, c0), (l1, c1) = start, end
        if l0 == l1:
            return self.lines[l0][c0:c1]
        parts = [self.lines[l0][c0:]] + self.lines[l0 + 1:l1] + [self.lines[l1][:c1]]
        return "".join(parts)

    def top_level(self, descriptor: Descriptor) -> tuple[list[TopLevelEntry], list[str]]:
        entries: list[TopLevelEntry] = []
        unknown_top: list[str] = []
        tok = self.tokenizer
        while not tok.AtEnd():
            start = self._pos()
            name = tok.token
            fd = descriptor.fields_by_name.get(name)
            unknown: list[str] = []
            self._field(fd, name, unknown, depth=1)
            end = self._pos() if not tok.AtEnd() else (len(self.lines) - 1, len(self.lines[-1]) if self.lines else 0)
            if fd is None:
                unknown_top.append(name)
            if name in ("layer", "layers"):
                entries.append(TopLevelEntry(name, self._slice(start, end).rstrip(), start[0] + 1, unknown))
        return entries, unknown_top

    def _field(self, fd: FieldDescriptor | None, path: str, unknown: list[str], depth: int) -> None:
        tok = self.tokenizer
        if depth > self.limits.max_nesting_depth:
            raise LimitExceededError(f"prototxt nesting deeper than {self.limits.max_nesting_depth} levels")
        tok.NextToken()  # the field name
        tok.TryConsume(":")
        if tok.token in ("{", "<"):
            closing = "}" if tok.token == "{" else ">"
            tok.NextToken()
            sub = fd.message_type if fd is not None and fd.message_type is not None else None
            while not tok.AtEnd() and tok.token != closing:
                name = tok.token
                child = sub.fields_by_name.get(name) if sub is not None else None
                child_path = f"{path}.{name}" if depth > 1 else name  # relative to the top-level entry
                if sub is not None and child is None:
                    unknown.append(child_path)
                self._field(child, child_path, unknown, depth + 1)
            tok.NextToken()
        elif tok.token == "[":
            level = 0
            while not tok.AtEnd():
                level += tok.token in ("[", "{", "<")
                level -= tok.token in ("]", "}", ">")
                tok.NextToken()
                if level == 0:
                    break
        else:
            tok.NextToken()  # scalar
            while tok.token[:1] in ("'", '"'):
                tok.NextToken()  # adjacent string pieces


def parse_prototxt_text(text: str, *, source: str = "<text>", limits: Limits = DEFAULT_LIMITS) -> ParsedPrototxt:
    """Parse prototxt ``text``; syntax errors raise PrototxtSyntaxError as ``file:line:col: msg``."""
    if len(text) > limits.max_prototxt_bytes:
        raise LimitExceededError(
            f"prototxt is {len(text)} characters, over the limit of {limits.max_prototxt_bytes}", file=source)
    check_prototxt_text(text, limits, source=source)
    net = caffe_pb2.NetParameter()
    try:
        text_format.Parse(text, net, allow_unknown_field=True)
    except text_format.ParseError as error:
        raise _syntax_error(error, source) from None
    except RecursionError:
        raise LimitExceededError("prototxt nesting is too deep to parse", file=source) from None
    entries, unknown_top = _Walker(text, limits).top_level(caffe_pb2.NetParameter.DESCRIPTOR)
    warnings = []
    if unknown_top:
        warnings.append(f"{source}: top-level fields outside the Caffe schema ignored: {', '.join(unknown_top)}")
    return ParsedPrototxt(net=net, source=source, layer_texts=entries, top_level_unknown=unknown_top,
                          warnings=warnings)


def read_prototxt(path: str | os.PathLike, *, limits: Limits = DEFAULT_LIMITS) -> ParsedPrototxt:
    """Read and parse a prototxt file."""
    source = os.fspath(path)
    data = read_file_bytes(path, what="prototxt", max_bytes=limits.max_prototxt_bytes)
    return parse_prototxt_text(_decode(data, source), source=source, limits=limits)
