"""Exceptions with plain-sentence messages, safe to show to a user as they are."""


class MedsamError(ValueError):
    """Base class: the message is one plain sentence meant for the user."""


class InputError(MedsamError):
    """An image, mask or prompt that cannot be used (corrupt, wrong size, out of range)."""


class ModelUnavailableError(MedsamError):
    """A model whose checkpoint is not on this machine and could not be fetched."""


class CheckpointError(MedsamError):
    """A checkpoint file that failed its size, sha256 or shape checks."""
