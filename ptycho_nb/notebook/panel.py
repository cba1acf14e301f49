"""A panel: data choice, the config forms, and Train / Stop / Reconstruct buttons.

Train runs the same :func:`ptycho_nb.train` as the API, in a background thread
(:mod:`ptycho_nb.notebook.background`) so the kernel stays responsive; Stop ends it at the next
batch. Reconstruct runs :func:`ptycho_nb.infer` on the result. The buttons are disabled while
anything is invalid, with the reason in :attr:`Panel.status`. The panel follows its forms through
their ``value`` and ``errors`` traits (README "In a notebook").
"""

from __future__ import annotations

import html
import logging
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from ..config import ConfigError, check_compatible, read_config_file, save_configs
from .background import TrainingHandle, start_training
from .builders import (ExecutionConfigBuilder, InferenceConfigBuilder, ModelConfigBuilder,
                       TrainingConfigBuilder)

__all__ = ["DATA_CHOICES", "Panel"]

log = logging.getLogger(__name__)

SIMULATED, FILE, GIVEN = "simulated default", "file", "given data"
DATA_CHOICES = (SIMULATED, FILE)


class Panel:
    """Configure, train (in the background), stop and reconstruct from one widget.

    Parameters
    ----------
    data : PtychoData or path, optional
        Data to train on; a path preselects 'file'. Default: a simulated scan.
    simulate_kwargs : mapping, optional
        Arguments of :func:`ptycho_nb.simulate` for 'simulated default' (``N`` follows the model).
    model, training, execution, inference : configs, optional
        Initial values of the forms.
    """

    def __init__(self, data: Any = None, *, simulate_kwargs: Mapping[str, Any] | None = None,
                 model: Any = None, training: Any = None, execution: Any = None,
                 inference: Any = None) -> None:
        self._given = None
        options = list(DATA_CHOICES)
        initial_choice, initial_path = SIMULATED, ""
        if isinstance(data, (str, os.PathLike)):
            initial_choice, initial_path = FILE, str(data)
        elif data is not None:
            self._given = data
            options.insert(0, GIVEN)
            initial_choice = GIVEN
        self.simulate_kwargs = dict(simulate_kwargs or {})
        self._simulated: Any = None
        self.data_choice = widgets.Dropdown(options=options, value=initial_choice, description="data",
                                            tooltip="Simulated default scan, or a data file (npz/h5)")
        self.data_path = widgets.Text(value=initial_path, description="file",
                                      placeholder="path to a scan file",
                                      tooltip="Scan file (npz, HDF5, ptychodus product)")
        self.data_message = widgets.HTML("")

        self.model_builder = ModelConfigBuilder(initial=model)
        self.training_builder = TrainingConfigBuilder(initial=training)
        self.execution_builder = ExecutionConfigBuilder(initial=execution)
        self.inference_builder = InferenceConfigBuilder(initial=inference)
        self.builders = {"model": self.model_builder, "training": self.training_builder,
                         "execution": self.execution_builder, "inference": self.inference_builder}

        self.overwrite = widgets.Checkbox(value=False, description="overwrite existing output",
                                          indent=False)
        self.train_button = widgets.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", button_style="warning", icon="stop",
                                          disabled=True)
        self.reconstruct_button = widgets.Button(description="Reconstruct", button_style="success",
                                                 icon="image")
        self.status = widgets.Label("")
        self.output = widgets.Output()
        self.errors: dict[str, str] = {}
        self.handle: TrainingHandle | None = None
        self._last_handle: TrainingHandle | None = None
        self.result: Any = None
        self.reconstruction: Any = None
        self.last_error: BaseException | None = None

        self.data_choice.observe(lambda _c: self.refresh(), names="value")
        self.data_path.observe(lambda _c: self.refresh(), names="value")
        for b in self.builders.values():
            b.observe(lambda _c: self.refresh(), names=["value", "errors"])
        self.train_button.on_click(lambda _b: self.train())
        self.stop_button.on_click(lambda _b: self.stop())
        self.reconstruct_button.on_click(lambda _b: self.reconstruct())

        forms = widgets.Accordion(
            children=[self.model_builder, self.training_builder, self.execution_builder,
                      self.inference_builder],
            titles=["model", "training", "execution", "inference"])
        self.widget = widgets.VBox([
            widgets.HBox([self.data_choice, self.data_path, self.data_message]),
            forms,
            widgets.HBox([self.train_button, self.stop_button, self.reconstruct_button, self.overwrite]),
            self.status,
            self.output,
        ])
        self.widget.add_class("ptycho-nb-panel")
        self.refresh()

    # ------------------------------------------------------------------ validation
    def _data_error(self) -> str | None:
        if self.data_choice.value != FILE:
            return None
        p = self.data_path.value.strip()
        if not p:
            return "data file: enter a path"
        if not pathlib.Path(p).expanduser().is_file():
            return f"data file not found: {p}"
        return None

    def refresh(self) -> None:
        """Re-check everything (data, forms, cross-config rules); update buttons and status."""
        errors: dict[str, str] = {}
        derr = self._data_error()
        self.data_path.layout.display = None if self.data_choice.value == FILE else "none"
        if derr:
            errors["data"] = derr
            self.data_path.add_class("ptycho-nb-invalid")
            self.data_path.layout.border = "2px solid #d62728"
        else:
            self.data_path.remove_class("ptycho-nb-invalid")
            self.data_path.layout.border = None
        self.data_message.value = (f"<span style='color:#d62728'>{html.escape(derr)}</span>"
                                   if derr else "")
        # checked on the forms' values (each the last valid config of its form), also while a
        # form is invalid: gating on validity would clear these marks at every other refresh
        external: dict[str, str] = {}
        try:
            check_compatible(self.execution_builder.value, self.model_builder.value,
                             self.training_builder.value)
        except ConfigError as exc:
            external = {n: str(exc) for n in exc.fields}
        for b in self.builders.values():
            b.set_external_errors(external)
        for section, b in self.builders.items():
            for n, msg in b.errors.items():
                errors.setdefault(f"{section}.{n}", msg)
        self.errors = errors
        self._update_buttons()

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def running(self) -> bool:
        return self.handle is not None and self.handle.running

    def _update_buttons(self) -> None:
        running = self.running
        first = next(iter(self.errors.items()), None)
        reason = f"invalid {first[0]}: {first[1]}" if first else ""
        self.train_button.disabled = bool(first) or running
        self.reconstruct_button.disabled = bool(first) or running or self.result is None
        self.stop_button.disabled = not running
        if first:
            self.status.value = reason
        elif running:
            self.status.value = ("stopping…" if self.handle and self.handle.stop_requested
                                 else "training… (Stop ends it at the next batch)")
        elif self.last_error is not None:
            self.status.value = f"error: {type(self.last_error).__name__}: {self.last_error}"
        elif self.result is None:
            self.status.value = "ready to train (Reconstruct needs a trained model)"
        else:
            self.status.value = "ready"
        self.train_button.tooltip = reason or "Train with these settings"
        self.reconstruct_button.tooltip = reason or (
            "Train first" if self.result is None else "Reconstruct the scan")

    # ------------------------------------------------------------------ data and configs
    def data(self) -> Any:
        """The data the panel trains/reconstructs on (simulates once for 'simulated default')."""
        choice = self.data_choice.value
        if choice == GIVEN:
            return self._given
        if choice == FILE:
            return pathlib.Path(self.data_path.value.strip()).expanduser()
        n = self.model_builder.value.N
        if self._simulated is None or self._simulated.N != n:
            from ..physics import simulate

            self._simulated = simulate(**{"N": n, **self.simulate_kwargs})
        return self._simulated

    def configs(self) -> dict[str, Any]:
        """The validated configs by section; raises the first validation error."""
        if self.errors:
            first = next(iter(self.errors.items()))
            raise ConfigError(f"invalid {first[0]}: {first[1]}")
        return {k: b.config() for k, b in self.builders.items()}

    def save(self, path: str | os.PathLike) -> None:
        """Save all configs as one sectioned JSON file (what the CLI's ``--config`` reads)."""
        save_configs(path, **self.configs())

    def load(self, path: str | os.PathLike) -> None:
        """Load the sections present in a (sectioned or flat execution) JSON config file."""
        for section, values in read_config_file(path).items():
            self.builders[section].load(values)
        self.refresh()

    # ------------------------------------------------------------------ actions
    def train(self) -> TrainingHandle:
        """Start training in the background (what the Train button does)."""
        self.refresh()
        if self.running:
            raise RuntimeError("training is already running")
        cfg = self.configs()
        self.last_error = None
        data = self.data()
        self.output.append_stdout("training started…\n")
        self.handle = start_training(
            data=data, model=cfg["model"], training=cfg["training"], execution=cfg["execution"],
            front_end="widget", overwrite=self.overwrite.value, on_done=self._training_done)
        self._update_buttons()
        return self.handle

    def _training_done(self, handle: TrainingHandle) -> None:
        if handle.error is not None:
            self.last_error = handle.error
            self.output.append_stderr(f"training failed: {type(handle.error).__name__}: "
                                      f"{handle.error}\n")
        else:
            self.result = handle.result
            run = handle.result.run
            self.output.append_stdout(
                f"training {'stopped' if handle.stop_requested else 'finished'} after "
                f"{run.epochs_run} epoch(s), {handle.result.elapsed_s:.1f} s; "
                f"archive: {handle.result.archive_path}\n")
        # the thread is still alive while this runs: compute button states as if it had ended
        self.handle = None
        self._last_handle = handle
        self._update_buttons()

    def stop(self) -> None:
        """Ask the running training to stop at the next batch (what the Stop button does)."""
        if self.handle is not None:
            self.handle.stop()
        self._update_buttons()

    def join(self, timeout: float | None = None) -> Any:
        """Wait for the background training; returns the result."""
        handle = self.handle or self._last_handle
        if handle is not None:
            handle.wait(timeout)
        return self.result

    def reconstruct(self) -> Any:
        """Run :func:`ptycho_nb.infer` on the trained result (what Reconstruct does)."""
        from ..workflows.inference import infer

        self.refresh()
        if self.result is None:
            raise RuntimeError("nothing to reconstruct with: train first")
        cfg = self.configs()
        self.status.value = "reconstructing…"
        try:
            self.reconstruction = infer(self.result, self.data(), execution=cfg["execution"],
                                        inference=cfg["inference"], front_end="widget")
        except Exception as exc:
            self.last_error = exc
            self.output.append_stderr(f"reconstruction failed: {type(exc).__name__}: {exc}\n")
            self._update_buttons()
            raise
        self.last_error = None
        self.output.append_stdout("reconstruction done\n")
        try:
            self.output.append_display_data(self.reconstruction)
        except Exception:
            log.debug("could not display the reconstruction", exc_info=True)
        self._update_buttons()
        return self.reconstruction

    # ------------------------------------------------------------------ display
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
