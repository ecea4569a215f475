"""onnxruntime backend: the model converted by nncbridge's own exporter, one shared session."""
from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from ..errors import BackendError
from ..model.graph import Executor, Model


class OnnxRuntimeBackend:
    name = "onnxruntime"

    def __init__(self, model: Model, executor: Executor, *, intra_op_num_threads: int | None = None,
                 inter_op_num_threads: int | None = None, providers: list[str] | None = None,
                 memory_arena: bool = True, opset: int | None = None, allow_spinning: bool = True) -> None:
        import onnxruntime as ort

        from ..export.onnx_export import to_onnx_with_external_weights

        # The weights go to onnxruntime as the model's own arrays, not through a serialized copy.
        proto, weights = to_onnx_with_external_weights(model, executor.name, opset=opset)
        serialized = proto.SerializeToString()
        del proto
        options = ort.SessionOptions()
        # onnxruntime copies these while loading; the arrays can go once the session exists.
        values = {name: ort.OrtValue.ortvalue_from_numpy(a) for name, a in weights.items()}
        if values:
            options.add_external_initializers(list(values), list(values.values()))
        if intra_op_num_threads is not None:
            options.intra_op_num_threads = int(intra_op_num_threads)
        if inter_op_num_threads is not None:
            options.inter_op_num_threads = int(inter_op_num_threads)
        # onnxruntime's default: buffers are reused between calls (faster), so memory stays at the
        # largest batch seen; memory_arena=False makes memory follow each call's batch instead.
        options.enable_cpu_mem_arena = bool(memory_arena)
        # onnxruntime's threads spin a while after each run waiting for more work (its default);
        # allow_spinning=False lets them sleep, leaving the cores to other threads (a server's event loop).
        if not allow_spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Errors reach the caller as BackendError with onnxruntime's message; keep its logger quiet.
        options.log_severity_level = 4
        ort.set_default_logger_severity(4)
        try:
            self.session = ort.InferenceSession(serialized, options,
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BackendError(f"onnxruntime cannot load the converted model: {e}") from None
        del serialized, values, weights
        self.output_names = [o.name for o in self.session.get_outputs()]
        # The Predictor has checked names, shapes and dtypes already; on the CPU provider the
        # session's own run() only repeats those checks in Python (~10 µs a call), so call its
        # compiled core directly. Other providers keep run() for onnxruntime's provider fallback.
        core = getattr(self.session, "_sess", None)
        if core is not None and self.session.get_providers() == ["CPUExecutionProvider"]:
            self._run: Any = partial(core.run, self.output_names)
        else:
            self._run = partial(self.session.run, self.output_names)

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        try:
            return list(self._run(feeds, None))
        except Exception as e:
            raise BackendError(f"onnxruntime failed: {e}") from None

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "providers": self.session.get_providers()}
