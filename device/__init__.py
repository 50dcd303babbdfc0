"""qr-checkin: the firmware service of a QR check-in reader."""

__version__ = "0.1.0"
