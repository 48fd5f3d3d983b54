"""One spelling per expression across label sets.

FER2013 says "angry", "happy", "sad"; FERPlus and CK+ say "anger", "happiness", "sadness". A class
chosen once ("explain *happy*") must mean the same expression for every model that has it,
whatever its training set called it; the FER2013 spelling is the one shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

SPELLINGS = {"anger": "angry", "happiness": "happy", "sadness": "sad"}


def canonical(label: str) -> str:
    """The shown spelling of an expression name (lower case)."""
    lowered = label.strip().lower()
    return SPELLINGS.get(lowered, lowered)


def label_index(label: str, labels: Sequence[str]) -> int | None:
    """Index of the expression `label` names among `labels`, under any spelling; None if absent."""
    wanted = canonical(label)
    return next((index for index, name in enumerate(labels) if canonical(name) == wanted), None)


def label_union(label_lists: Iterable[Sequence[str]]) -> list[str]:
    """Every expression any of the lists has, once, in first-seen order, in the shown spelling."""
    return list(dict.fromkeys(canonical(label) for labels in label_lists for label in labels))
