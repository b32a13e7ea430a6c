"""medsam: Segment Anything family models on medical images, hands-on and with numbers."""

from .errors import CheckpointError, InputError, MedsamError, ModelUnavailableError
from .predictor import Embedding, Prediction, Predictor, Prompt, list_models, load_model

__all__ = [
    "CheckpointError", "Embedding", "InputError", "MedsamError", "ModelUnavailableError",
    "Prediction", "Predictor", "Prompt", "list_models", "load_model",
]
__version__ = "0.1.0"
