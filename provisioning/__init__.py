"""qr-provision: the technicians' tool that prepares a device's configuration, credentials and label."""
