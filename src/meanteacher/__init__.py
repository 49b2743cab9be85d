"""meanteacher: Mean Teacher semi-supervised learning (Tarvainen & Valpola, 2017) in PyTorch.

The parts a user takes into their own loop are re-exported here: :class:`EMATeacher`, the costs in
:mod:`meanteacher.losses`, the schedules in :mod:`meanteacher.schedules`, the six methods, the model
registry, and :func:`load_model` for a trained network. Importing it loads no trainer and no dataset
reader: those live in :mod:`meanteacher.run` and :mod:`meanteacher.data`.
"""

from . import losses, masks, schedules
from .inference import export_model, load_model
from .losses import NO_LABEL, classification_cost, logit_distance, reduce_cost, softmax_kl, softmax_mse, tau_consistency
from .masks import confidence_mask, prediction_entropy, uncertainty_mask, uncertainty_threshold
from .methods import METHODS, VAT, Batch, MeanTeacher, MeanTeacherVAT, Method, PiModel, Supervised, TemporalEnsembling
from .models import create_model, list_models, register_model
from .schedules import cosine_rampdown, linear_rampup, sigmoid_rampdown, sigmoid_rampup
from .teacher import EMATeacher

__version__ = "0.1.0"

__all__ = [
    "NO_LABEL",
    "METHODS",
    "Batch",
    "EMATeacher",
    "MeanTeacher",
    "MeanTeacherVAT",
    "Method",
    "PiModel",
    "Supervised",
    "TemporalEnsembling",
    "VAT",
    "classification_cost",
    "confidence_mask",
    "cosine_rampdown",
    "create_model",
    "export_model",
    "linear_rampup",
    "list_models",
    "load_model",
    "logit_distance",
    "losses",
    "masks",
    "prediction_entropy",
    "reduce_cost",
    "register_model",
    "schedules",
    "sigmoid_rampdown",
    "sigmoid_rampup",
    "softmax_kl",
    "softmax_mse",
    "tau_consistency",
    "uncertainty_mask",
    "uncertainty_threshold",
]
