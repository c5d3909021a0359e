"""Loading an OpenAPI document: from a file or URL, external `$ref`s inlined by prance, Swagger 2.0 converted, and
the whole checked by openapi-core.

Internal refs (`#/components/schemas/...`) are kept as refs: recursive schemas stay finite, and the schema bundler
turns them into `$defs` per tool. Full validation of a large spec is slow (GitHub's, 13 MB: about 25 s here), so
documents over `SYNC_VALIDATION_LIMIT` bytes are validated after the bridge starts, their problems logged with the
JSON pointer of each; smaller ones are validated before serving and a broken one is refused.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson
import yaml
from prance.util.resolver import RESOLVE_FILES, RESOLVE_HTTP, RefResolver
from prance.util.url import ResolutionError, absurl, fetch_url_text

from bridge.exceptions import SpecError
from bridge.openapi.swagger2 import convert

__all__ = ["SYNC_VALIDATION_LIMIT", "Spec", "load_spec", "validate_spec"]

_EXTERNAL_REF = re.compile(r"""\$ref["']?\s*:\s*(?:["'](?!#)|[^"'#\s])""")
"""A `$ref` whose target is not in the same document (JSON or YAML spelling)."""

_YAMLLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

logger = logging.getLogger(__name__)

SYNC_VALIDATION_LIMIT: Final = 2 * 1024 * 1024
"""Bytes of JSON up to which a document is fully validated before serving (larger: validated in the background)."""


@dataclass(frozen=True)
class Spec:
    """An OpenAPI 3.x document ready for tool generation, and where it came from."""

    document: dict[str, Any]
    source: str
    size: int
    """Bytes of the document serialized as JSON: the measure that decides when it is validated."""
    converted_from_swagger2: bool = False


def load_spec(source: str) -> Spec:
    """Read `source` (a path or an http(s) URL), inline its external refs, convert Swagger 2.0; raises `SpecError`."""
    url = absurl(source, os.getcwd() + os.sep)
    try:
        text, _ = fetch_url_text(url)
    except (OSError, ResolutionError, ValueError) as exc:
        raise SpecError(f"Cannot read the OpenAPI document {source!r}: {exc}") from exc
    document = _parse(text, source)
    if _EXTERNAL_REF.search(text):
        # prance walks the whole document (about 0.9 s for GitHub's): only when something outside it is referenced.
        try:
            resolver = RefResolver(document, url, resolve_types=RESOLVE_FILES | RESOLVE_HTTP, strict=False)
            resolver.resolve_references()
        except ResolutionError as exc:
            raise SpecError(f"An external $ref of {source!r} cannot be resolved: {exc}") from exc
        document = resolver.specs
    swagger2 = str(document.get("swagger", "")) == "2.0"
    if swagger2:
        document = convert(document)
    version = str(document.get("openapi", ""))
    if not version.startswith(("3.0", "3.1")):
        raise SpecError(
            f"{source!r} declares neither 'openapi: 3.0.x/3.1.x' nor 'swagger: \"2.0\"' (found {version!r})",
            "/openapi",
        )
    if not isinstance(document.get("paths"), dict):
        raise SpecError(f"{source!r} has no 'paths' object", "/paths")
    size = len(orjson.dumps(document))
    return Spec(document=document, source=source, size=size, converted_from_swagger2=swagger2)


def _parse(text: str, source: str) -> dict[str, Any]:
    """JSON with orjson (a 13 MB spec in 0.2 s), else YAML with libyaml's loader."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            document = yaml.load(text, Loader=_YAMLLoader)
        except yaml.YAMLError as exc:
            raise SpecError(f"{source!r} is neither JSON nor YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise SpecError(f"{source!r} is not an OpenAPI document (its top level is not an object)")
    return document


def validate_spec(spec: Spec) -> list[SpecError]:
    """Check the document against the OpenAPI specification with openapi-core; return the problems found."""
    from jsonschema.exceptions import ValidationError
    from openapi_core import OpenAPI
    from referencing.exceptions import Unresolvable

    try:
        OpenAPI.from_dict(spec.document)
    except ValidationError as exc:
        return [_problem(exc)]
    except Unresolvable as exc:
        ref = "#" + str(getattr(exc, "ref", "")).lstrip("#")
        return [SpecError(f"$ref {ref!r} points to nothing in the document", _where_referenced(spec.document, ref))]
    except Exception as exc:  # openapi-core raises several unrelated types for unreadable documents
        return [SpecError(f"{spec.source!r} is not a valid OpenAPI document: {exc}")]
    return []


def _problem(exc: Any) -> SpecError:
    return SpecError(f"Invalid OpenAPI document: {exc.message}", _pointer(exc.absolute_path))


def _where_referenced(document: Any, ref: str) -> str:
    """The JSON pointer of the first place that uses `ref` (iterative: documents can be deep)."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(document, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            if node.get("$ref") == ref:
                return _pointer(path)
            stack.extend((value, (*path, key)) for key, value in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((value, (*path, index)) for index, value in reversed(list(enumerate(node))))
    return ""


def _pointer(path: Iterable[Any]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
