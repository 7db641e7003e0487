"""What a classifier's scores decide, in one place for the training stack and for torch-free
serving (numpy only): which class is the negative one, and per image the class (single-label) or
the set of codes (multi-label) at a threshold."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hybrid.errors import ConfigError

# Class names that mean "nothing wrong here" (any case): a single-label task's negative class, the
# one binary figures, thresholds and video events count against, unless data.negative_class names one.
NEGATIVE_NAMES = ("normal", "ok", "good", "negative", "background")
# What a multi-label decision with no code at or above the threshold is called.
NO_CODE = "Normal"

THRESHOLD = 0.5  # the benchmark's decision threshold, where none is tuned


def resolve_negative_class(
    task: str, class_names: Sequence[str], declared: str | None, *, required_of_two: bool = False
) -> str | None:
    """The negative class of a task: ``declared`` (``data.negative_class``), else the one class
    named as in :data:`NEGATIVE_NAMES`; ``binary``'s is class 0 (label 0 in its ``Defect`` column).
    Never guessed from the class order: with ``required_of_two`` (a two-class folder dataset, the
    layout of private Normal/Defect data) two classes with neither stop here, with one line naming
    them and the key to set; otherwise a task without one has none (argmax, no Normal/Defect figures)."""
    names = [str(c) for c in class_names]
    if task == "multilabel":
        if declared is not None:
            raise ConfigError(
                f"data.negative_class={declared!r} applies to single-label tasks; in data.task=multilabel "
                "an image without any label is the normal one"
            )
        return None
    if declared is not None:
        if str(declared) not in names:
            raise ConfigError(f"data.negative_class={declared!r} is not one of the classes {names}")
        found = [str(declared)]
    else:
        found = [name for name in names if name.lower() in NEGATIVE_NAMES]
    if task == "binary":
        if found and found != [names[0]]:
            raise ConfigError(
                f"data.task=binary: class 0 ({names[0]!r}, label 0 of column Defect) is its negative class, "
                f"but {found} names another; list the negative class first in data.class_names"
            )
        return names[0]
    if len(found) > 1:
        raise ConfigError(f"classes {names}: {found} could each be the negative class; set data.negative_class=<name>")
    if not found and len(names) == 2 and required_of_two:
        raise ConfigError(
            f"classes {names}: neither is named as a negative (normal) class ({'/'.join(NEGATIVE_NAMES)}); "
            f"set data.negative_class=<one of {names}> (the class that means no defect)"
        )
    return found[0] if found else None


def positive_index(class_names: Sequence[str], negative_class: str | None) -> int | None:
    """For two classes one of which is negative, the other (the defect class a threshold decides on)."""
    if len(class_names) != 2 or negative_class is None:
        return None
    return 1 - list(class_names).index(negative_class)


def finding_classes(class_names: Sequence[str], negative_class: str | None) -> list[tuple[str, int]]:
    """``(name, index)`` of the classes whose presence is a finding (video events): every class
    but the negative one (all of them where there is none)."""
    return [(name, i) for i, name in enumerate(class_names) if name != negative_class]


def single_label_predictions(
    probs: np.ndarray, threshold: float = THRESHOLD, positive: int | None = None
) -> np.ndarray:
    """Class indices: with ``positive`` (two classes, one of them negative: :func:`positive_index`),
    that class when its score reaches ``threshold`` and the other below it; else the argmax."""
    if positive is not None and probs.shape[1] == 2:
        return np.where(probs[:, positive] >= threshold, positive, 1 - positive).astype(np.int64)
    return probs.argmax(axis=1)


def decided_labels(
    probs: np.ndarray, class_names: Sequence[str], threshold, *, single_label: bool, positive: int | None = None
) -> list[str]:
    """Predicted class per image; multi-label: the codes that reach ``threshold`` (one, or one per
    code), space-separated, or :data:`NO_CODE` when none does."""
    if single_label:
        return [class_names[i] for i in single_label_predictions(probs, threshold, positive)]
    names = np.array(class_names)
    return [" ".join(names[row >= threshold]) or NO_CODE for row in probs]
