"""busviewer: second-reader workstation for breast ultrasound (research use only)."""

__version__ = "0.1.0"
