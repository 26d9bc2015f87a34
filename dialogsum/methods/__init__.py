"""Built-in fine-tuning methods, each registered through the ``dialogsum`` entry points.

:func:`check_target_modules` is public so that adapter plugins report a misspelt module name
the same way the built-ins do.
"""

from __future__ import annotations

from typing import Any

from dialogsum.errors import ConfigError


def check_target_modules(model: Any, targets: list[str], method: str) -> None:
    """Fail, listing the model's linear modules, when a target matches no module of ``model``.

    peft would raise too, but with a message about its internals rather than the option the
    user set.
    """
    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [target for target in targets if target not in leaves]
    if missing:
        linear = sorted(
            {
                name.rsplit(".", 1)[-1]
                for name, module in model.named_modules()
                if type(module).__name__ == "Linear"
            }
        )
        raise ConfigError(
            f"Invalid options for method '{method}': target_modules {missing} match no module "
            f"of this model. Linear modules it has: {', '.join(linear)}."
        )
