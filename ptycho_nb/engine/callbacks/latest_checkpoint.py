"""A checkpoint of the newest epoch, whatever the monitored metric says: what a resume continues."""

from __future__ import annotations

import os

from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["latest_checkpoint", "LATEST"]

#: File name stem of the newest epoch's checkpoint (``DIR/latest.ckpt``).
LATEST = "latest"


def latest_checkpoint(dirpath: str | os.PathLike[str]) -> ModelCheckpoint:
    """A ``ModelCheckpoint`` that writes ``dirpath/latest.ckpt`` after every epoch, replacing it.

    Beside the monitored checkpoint of :func:`~ptycho_nb.engine.trainer.default_callbacks` (the
    best epoch), this keeps the newest one, for a run that is stopped and continued
    (``trainer.fit(..., ckpt_path=dirpath/latest.ckpt)``). A plain ``ModelCheckpoint``, not a
    subclass, so checkpoints written before keep their callback state key.

    Parameters
    ----------
    dirpath : path-like
        Folder of the checkpoint.
    """
    # no monitor + save_top_k=1: the newest is kept (save_top_k=0 would save nothing); no version
    # counter, so the file keeps its name and a resume finds it
    return ModelCheckpoint(dirpath=str(dirpath), filename=LATEST, save_top_k=1, every_n_epochs=1,
                           enable_version_counter=False)
