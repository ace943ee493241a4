"""A stand-in for Lambda's Python runtime, run as a script by a bare interpreter (``python -I -S``):
only the standard library, the function's code (/var/task) and its layer (/opt/python) on sys.path.

    python -I -S lambda_runtime.py TASK_DIR LAYER_PYTHON_DIR HANDLER

It resolves HANDLER ("module.attr") as the runtime does, once (a container), then reads one JSON
event per line on stdin and writes one JSON line per invocation on stdout: ``{"result": ...}`` or
``{"error": traceback}``. An empty line asks for the files of the modules loaded so far
(``{"modules": [...]}``). Standard library only: nothing of the test's venv may leak in.
"""

import importlib
import json
import sys
import time
import traceback


class Context:
    """The attributes of Lambda's context object that the app reads."""

    def __init__(self, function_name: str, request_id: str) -> None:
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.aws_request_id = request_id
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "artifact-test"
        self._deadline = time.monotonic() + 30

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def main() -> None:
    task, layer, handler_string = sys.argv[1:4]
    # Lambda's order: the function's code, then the layer; the runtime's own boto3 (/var/runtime)
    # would come last, and is absent here on purpose: the layer must carry what the code imports.
    sys.path[:0] = [task, layer]
    out = sys.stdout
    sys.stdout = sys.stderr  # the function's prints and logs must not mix with the answers
    try:
        module, _, attr = handler_string.rpartition(".")
        handler = getattr(importlib.import_module(module), attr)
    except Exception:
        out.write(json.dumps({"error": "Runtime.ImportModuleError: " + traceback.format_exc()}) + "\n")
        out.flush()
        return
    out.write(json.dumps({"ready": handler_string}) + "\n")
    out.flush()
    for number, line in enumerate(sys.stdin):
        if not line.strip():
            files = sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())} - {""})
            out.write(json.dumps({"modules": files}) + "\n")
        else:
            try:
                result = handler(json.loads(line), Context(handler_string, f"artifact-{number}"))
                out.write(json.dumps({"result": result}, default=str) + "\n")
            except Exception:
                out.write(json.dumps({"error": traceback.format_exc()}) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
