"""qsplit: plan and run quantization-aware DNN inference across device, edge and cloud."""

__version__ = "0.1.0"
