"""schemathesis hooks for scripts/api_contract.sh (loaded by SCHEMATHESIS_HOOKS).

Hypothesis describes the lambda of a filtered strategy by parsing the source
file that defines it. On CPython 3.11, parsing a large module while the
stack is already deep can fail inside the AST constructor ("AST constructor
recursion depth mismatch", a SystemError), which ends schemathesis's
coverage phase with a runtime error that has nothing to do with the API.
The description is only a label: when it cannot be made, use the one
hypothesis itself uses for a lambda it cannot read.
"""

from hypothesis.internal import lambda_sources

_describe = lambda_sources.lambda_description


def _describe_or_unknown(f):
    try:
        return _describe(f)
    except (SystemError, RecursionError):
        return "lambda: <unknown>"


lambda_sources.lambda_description = _describe_or_unknown
