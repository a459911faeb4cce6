"""{{name}}: a Parade actor in Python, built with componentize-py.

`parade plugin build` builds it into {{name}}.wasm. The module `wit_world` is generated
from wit/ at build time (`.venv/bin/componentize-py --wit-path wit --world actor bindings .`
writes it out if your editor wants to see it).
"""

import wit_world
from wit_world.imports import host, types


class WitWorld(wit_world.WitWorld):
    def actions(self):
        return ["{{name}}"]

    def handle(self, action, body, signalled_failures):
        body = body or ""
        host.log(
            host.Level.INFO,
            f"{action}: task {host.task_id()} (try {host.try_number()}), "
            f"{len(body.encode())} bytes of body",
        )
        # Status, code, and for a pending result its wait before the next try (here none).
        return types.ActorResult(f"{action} done: {body}", types.StatusCode.COMPLETED, None)
