"""Names unique per physical instance, for what the cloud keeps after a delete (see ``lifecycle``).

A ``random.RandomId`` is drawn once and kept in state: stable across ``pulumi up`` runs (no
perpetual diff, unlike a timestamp), redrawn when one of its ``keepers`` changes (the inputs
that replace the resource it names) and after a destroy (it is destroyed too).
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_random as random

__all__ = ["SUFFIX_BYTES", "instance_suffix"]

SUFFIX_BYTES = 4  # 8 hex characters: a collision needs ~65k instances of one name


def instance_suffix(
    name: str, keepers: Mapping[str, pulumi.Input[str]], opts: pulumi.ResourceOptions
) -> pulumi.Output[str]:
    """Hex characters that change whenever a keeper changes; ``keepers`` use the engine's input names."""
    return random.RandomId(name, byte_length=SUFFIX_BYTES, keepers=dict(keepers), opts=opts).hex
