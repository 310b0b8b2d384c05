"""qsplit: plan and run quantization-aware DNN inference across device, edge and cloud."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """``qsplit.connect`` without making ``import qsplit`` load zmq and onnxruntime."""
    if name == "connect":
        from qsplit.runtime import connect

        return connect
    raise AttributeError(f"module 'qsplit' has no attribute {name!r}")
