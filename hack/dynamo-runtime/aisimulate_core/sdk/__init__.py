"""Any name imported from here is a placeholder class that raises when used."""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)

    def unavailable(*args, **kwargs):
        raise NotImplementedError(f"aisimulate_core.sdk.{name} is not available here")

    return type(name, (), {"__init__": unavailable, "__getattr__": classmethod(lambda cls, n: unavailable)})
