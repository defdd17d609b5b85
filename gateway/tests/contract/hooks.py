"""Schemathesis hooks for `make api-contract` (loaded through SCHEMATHESIS_HOOKS=hooks).

A page token (`format: page-token`) is opaque and signed: the only valid values are "" (the
first page) and a `next_page_token` the API returned, which the stateful phase follows through
the document's links. So a *valid-looking* page token made up by the generator is replaced by
"" before it is sent; the invalid ones (breaking the pattern or the length) are still sent, and
must be refused.
"""

from hypothesis import strategies as st

import schemathesis
from schemathesis.generation.meta import TestPhase

schemathesis.openapi.format("page-token", st.just(""))


def _query_is_positive(case) -> bool:
    meta = case.meta
    if meta is None or meta.phase.name == TestPhase.STATEFUL:
        return False
    for location, info in meta.components.items():
        if getattr(location, "value", location) == "query":
            return info.mode.is_positive
    return False


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.query and case.query.get("page_token") and _query_is_positive(case):
        case.query["page_token"] = ""
