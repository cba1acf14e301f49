"""A panel: data choice, the config forms, and Train / Stop / Reconstruct buttons.

Train runs the same :func:`ptycho_nb.train` as the API, in a background thread
(:mod:`ptycho_nb.notebook.background`) so the kernel stays responsive; Stop ends it at the next
batch. The progress bar and the live figure appear in the panel's own output area (a
:class:`~ptycho_nb.engine.callbacks.view.TrainingView`: a button's callback has no cell output to
display into). Reconstruct runs :func:`ptycho_nb.reconstruct` on the scan (from the trained model when there is
one, else from a flat start with the scan's probe) over the whole lit field unless the execution
form's ``pad_eval`` is unticked, also in the background: a
:class:`~ptycho_nb.notebook.RefineView` in the same area follows the refinement (the epoch and
deviance, and the phase as it forms), Stop ends it after the current epoch, and the finished
reconstruction's figure is shown there.
The buttons are disabled while anything is invalid — including an existing model archive in the
output folder while "overwrite" is unticked — with the reason in :attr:`Panel.status`; a collapsed
section's title says how many invalid fields it holds. The panel follows its forms through their
``value`` and ``errors`` traits (README "In a notebook").
"""

from __future__ import annotations

import dataclasses
import html
import logging
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import ipywidgets as widgets

from ..config import ConfigError, check_compatible, read_config_file, save_configs
from ..engine.callbacks import LivePlot, TrainingView
from ..plots import figure_bundle, plot_reconstruction
from .background import ReconstructionHandle, TrainingHandle, start_reconstruction, start_training
from .refine_view import RefineView
from .builders import (ExecutionConfigBuilder, InferenceConfigBuilder, ModelConfigBuilder,
                       TrainingConfigBuilder)

__all__ = ["DATA_CHOICES", "Panel"]

log = logging.getLogger(__name__)

SIMULATED, FILE, GIVEN = "simulated default", "file", "given data"
DATA_CHOICES = (SIMULATED, FILE)
SECTIONS = ("model", "training", "execution", "inference")
ARCHIVE = "wts.h5.zip"  # what train() writes into output_dir (ptycho_nb.model.archive.ARCHIVE_NAME)


def interactive_preset(quick: bool | None = None) -> dict[str, dict[str, Any]]:
    """Starting values of the panel: the demo's recipe (``ptycho-nb demo``, minutes on a CPU),
    or its quick variant (``PTYCHO_NB_QUICK=1``: seconds) — not the dataclass defaults (50 epochs).

    Returns
    -------
    dict
        ``{"simulate": ..., "model": ..., "training": ...}`` keyword mappings.
    """
    import dataclasses

    from ..config.canonical import ModelConfig, TrainingConfig
    from ..workflows.demo import demo_recipe

    recipe = demo_recipe(quick)
    model_names = {f.name for f in dataclasses.fields(ModelConfig)}
    training_names = {f.name for f in dataclasses.fields(TrainingConfig)}
    return {"simulate": dict(recipe.simulate),
            "model": {k: v for k, v in recipe.overrides.items() if k in model_names},
            "training": {k: v for k, v in recipe.overrides.items() if k in training_names}}


class Panel:
    """Configure, train (in the background), stop and reconstruct from one widget.

    Parameters
    ----------
    data : PtychoData or path, optional
        Data to train on; a path preselects 'file'. Default: a simulated scan.
    simulate_kwargs : mapping, optional
        Arguments of :func:`ptycho_nb.simulate` for 'simulated default' (``N`` follows the model).
        Default: the demo's scan (:func:`interactive_preset`).
    model, training, execution, inference : configs, optional
        Initial values of the forms. Model and training default to the demo's recipe (its quick
        variant when ``PTYCHO_NB_QUICK=1``), not the dataclass defaults; execution to the widget
        front end's defaults and Reconstruct's (``pad_eval=True``: the whole lit field).
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
        preset = interactive_preset()
        self.simulate_kwargs = dict(preset["simulate"] if simulate_kwargs is None else simulate_kwargs)
        self._simulated: Any = None
        self.data_choice = widgets.Dropdown(options=options, value=initial_choice, description="data",
                                            tooltip="Simulated default scan, or a data file (npz/h5)")
        self.data_path = widgets.Text(value=initial_path, description="file",
                                      placeholder="path to a scan file",
                                      tooltip="Scan file (npz, HDF5, ptychodus product)")
        self.data_message = widgets.HTML("")

        self.model_builder = ModelConfigBuilder(initial=preset["model"] if model is None else model)
        self.training_builder = TrainingConfigBuilder(
            initial=preset["training"] if training is None else training)
        # Reconstruct is the only action that reads the inference fields: the form starts from
        # its defaults (the whole lit field), labelled, so what it shows is what runs
        self.execution_builder = ExecutionConfigBuilder(initial=execution, command="reconstruct")
        self.inference_builder = InferenceConfigBuilder(initial=inference)
        self.builders = {"model": self.model_builder, "training": self.training_builder,
                         "execution": self.execution_builder, "inference": self.inference_builder}

        self.overwrite = widgets.Checkbox(value=False, description="overwrite existing output",
                                          indent=False,
                                          tooltip="Replace the model archive in training.output_dir")
        self.train_button = widgets.Button(description="Train", button_style="primary", icon="play")
        self.stop_button = widgets.Button(description="Stop", button_style="warning", icon="stop",
                                          disabled=True)
        self.reconstruct_button = widgets.Button(description="Reconstruct", button_style="success",
                                                 icon="image")
        self.status = widgets.Label("")
        self.output = widgets.Output()
        self.view = TrainingView()  # progress bars and live figure of the running training
        self.refine_box = widgets.VBox([])  # the running reconstruction's RefineView
        self.refine_view: RefineView | None = None
        self.output_area = widgets.VBox([self.output, self.view.widget, self.refine_box])
        self.output_area.add_class("ptycho-nb-output")
        self.errors: dict[str, str] = {}
        self.handle: TrainingHandle | ReconstructionHandle | None = None  # the running action
        self._last_handle: TrainingHandle | ReconstructionHandle | None = None
        self.result: Any = None
        self.reconstruction: Any = None
        self.last_error: BaseException | None = None

        self.data_choice.observe(lambda _c: self.refresh(), names="value")
        self.data_path.observe(lambda _c: self.refresh(), names="value")
        self.overwrite.observe(lambda _c: self.refresh(), names="value")
        for b in self.builders.values():
            b.observe(lambda _c: self.refresh(), names=["value", "errors"])
        self.train_button.on_click(lambda _b: self.train())
        self.stop_button.on_click(lambda _b: self.stop())
        self.reconstruct_button.on_click(lambda _b: self.reconstruct())

        self.forms = forms = widgets.Accordion(
            children=[self.model_builder, self.training_builder, self.execution_builder,
                      self.inference_builder],
            titles=list(SECTIONS))
        self.widget = widgets.VBox([
            widgets.HBox([self.data_choice, self.data_path, self.data_message]),
            forms,
            widgets.HBox([self.train_button, self.stop_button, self.reconstruct_button, self.overwrite]),
            self.status,
            self.output_area,
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
        titles = []
        for section, b in self.builders.items():
            for n, msg in b.errors.items():
                errors.setdefault(f"{section}.{n}", msg)
            # a collapsed section must say that it holds what keeps Train disabled
            k = len(b.errors)
            titles.append(f"{section} — {k} invalid field{'s' if k > 1 else ''}" if k else section)
        if tuple(self.forms.titles) != tuple(titles):
            self.forms.titles = titles
        out_err = self._output_error()
        if out_err:
            errors.setdefault("training.output_dir", out_err)
        self.errors = errors
        self._update_buttons()

    def _output_error(self) -> str | None:
        """An existing model archive in the output folder, unless "overwrite" is ticked: refused
        here, before the click, rather than by train() after it."""
        if self.overwrite.value or self.running:
            return None
        archive = pathlib.Path(self.training_builder.value.output_dir).expanduser() / ARCHIVE
        if archive.exists():
            return (f"{archive} exists: tick 'overwrite existing output' or choose another "
                    "output_dir")
        return None

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def running(self) -> bool:
        return self.handle is not None and self.handle.running

    def _config_errors(self) -> dict[str, str]:
        """:attr:`errors` without the output-folder check (which blocks training only)."""
        return {k: m for k, m in self.errors.items()
                if k != "training.output_dir" or "output_dir" in self.training_builder.errors}

    def _update_buttons(self) -> None:
        running = self.running
        first = next(iter(self.errors.items()), None)
        if first and first[0] == "training.output_dir" and first[0] not in self._config_errors():
            reason = first[1]  # not an invalid value: an archive that training would replace
        else:
            reason = f"invalid {first[0]}: {first[1]}" if first else ""
        self.train_button.disabled = bool(first) or running
        self.reconstruct_button.disabled = bool(self._config_errors()) or running
        self.stop_button.disabled = not running
        if first:
            self.status.value = reason
        elif running:
            if self.handle is not None and self.handle.stop_requested:
                self.status.value = "stopping…"
            elif isinstance(self.handle, ReconstructionHandle):
                self.status.value = "reconstructing… (Stop ends the refinement after this epoch)"
            else:
                self.status.value = "training… (Stop ends it at the next batch)"
        elif self.last_error is not None:
            self.status.value = f"error: {type(self.last_error).__name__}: {self.last_error}"
        elif self.result is None:
            self.status.value = "ready to train, or to reconstruct without a model (flat start)"
        else:
            self.status.value = "ready"
        self.train_button.tooltip = reason or "Train with these settings"
        self.reconstruct_button.tooltip = reason or (
            "Reconstruct the scan by refinement from a flat start (no model trained yet)"
            if self.result is None else "Reconstruct the scan: the model's single pass, then refinement")

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
        """The validated configs by section.

        Raises
        ------
        ConfigError
            One short message naming every invalid field (``section.field``) and its message.
        """
        # an existing output folder does not make the configs invalid (save() still works)
        problems = self._config_errors()
        if problems:
            raise ConfigError("; ".join(f"{k}: {m}" for k, m in problems.items()),
                              fields=tuple(k.split(".", 1)[-1] for k in problems))
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
            raise RuntimeError(f"a {self.handle.kind} run is already running: stop it or wait")
        cfg = self.configs()
        out_err = self._output_error()
        if out_err:
            raise FileExistsError(out_err)
        self.last_error = None
        data = self.data()
        self.output.outputs = ()  # the log of an earlier run
        self.output.append_stdout("training started…\n")
        self.view.clear()
        self.view.widget.layout.display = None
        self.refine_box.children = ()  # an earlier reconstruction's view
        every = cfg["execution"].plot_every_n_epochs
        # the live view belongs in the panel even outside a kernel (headless use): 'auto' for None
        live = [] if every == 0 else [LivePlot("auto" if every is None else every)]
        self.handle = start_training(
            data=data, model=cfg["model"], training=cfg["training"], execution=cfg["execution"],
            front_end="widget", overwrite=self.overwrite.value, on_done=self._training_done,
            callbacks=live, view=self.view)
        self._update_buttons()
        return self.handle

    def _training_done(self, handle: TrainingHandle) -> None:
        if handle.error is not None:
            self.last_error = handle.error
            message = str(handle.error)
            if isinstance(handle.error, FileExistsError):  # the API's wording names its argument
                message = message.replace("pass overwrite=True (CLI: --overwrite)",
                                          "tick 'overwrite existing output'")
            self.output.append_stderr(f"training failed: {type(handle.error).__name__}: "
                                      f"{message}\n")
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
        self.refresh()  # the archive now exists: Train needs "overwrite" to run again

    def stop(self) -> None:
        """Ask the running action to stop (what the Stop button does): training at the next
        batch, a reconstruction's refinement after its current epoch."""
        if self.handle is not None:
            self.handle.stop()
        self._update_buttons()

    def join(self, timeout: float | None = None) -> Any:
        """Wait for the running (or last) action; returns its result: the training's
        :attr:`result` or the :attr:`reconstruction` (None if it failed: see :attr:`last_error`)."""
        handle = self.handle or self._last_handle
        if handle is not None:
            handle.wait(timeout)
        return self.reconstruction if isinstance(handle, ReconstructionHandle) else self.result

    def reconstruct(self) -> ReconstructionHandle:
        """Start :func:`ptycho_nb.reconstruct` on the scan in the background (what Reconstruct
        does): from the trained result when there is one, else from a flat start with the scan's
        probe. :meth:`join` waits and returns the reconstruction, also kept in
        :attr:`reconstruction`.

        Its progress shows in the panel's own view (a button's callback has no cell output
        for a progress bar to go to): the phase as it forms, and the epoch and deviance when
        ``enable_progress_bar``.
        """
        self.refresh()
        if self.running:
            raise RuntimeError(f"a {self.handle.kind} run is already running: stop it or wait")
        cfg = self.configs()
        data = self.data()
        execution = cfg["execution"]
        self.last_error = None
        self.output.outputs = ()
        self.output.append_stdout("reconstruction started…\n")
        self.refine_view = RefineView()
        if not execution.enable_progress_bar:  # the picture stays: it is what the panel is for
            self.refine_view.label.layout.display = "none"
        self.refine_box.children = (self.refine_view,)
        self.view.widget.layout.display = "none"  # the last training's view would push it down
        self.handle = start_reconstruction(
            data, self.result, execution=dataclasses.replace(execution, enable_progress_bar=False),
            inference=cfg["inference"], front_end="widget", view=self.refine_view,
            on_done=self._reconstruction_done)
        self._update_buttons()
        return self.handle

    def _reconstruction_done(self, handle: ReconstructionHandle) -> None:
        if handle.error is not None:
            self.last_error = handle.error
            self.output.append_stderr(f"reconstruction failed: {type(handle.error).__name__}: "
                                      f"{handle.error}\n")
        else:
            self.reconstruction = rec = handle.result
            run = rec.run
            self.output.append_stdout(
                f"reconstruction {'stopped' if handle.stop_requested else 'done'}: "
                f"{run.refinement.epochs_run if run.refinement else 0} refinement epoch(s), "
                f"{rec.timings.total_s:.1f} s\n")
            try:
                # base64 PNG text: an Output widget's outputs sync as JSON, and PNG bytes would
                # be sent as a binary buffer that the browser turns into an invalid data: URL
                bundle = figure_bundle(plot_reconstruction(rec, show=False), "reconstruction")
                self.output.outputs += ({"output_type": "display_data", "data": bundle,
                                         "metadata": {}},)
            except Exception:
                log.warning("could not display the reconstruction", exc_info=True)
        self.handle = None
        self._last_handle = handle
        self.refresh()

    # ------------------------------------------------------------------ display
    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
