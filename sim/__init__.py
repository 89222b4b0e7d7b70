"""The iontophoresis device in software: electrical plant, firmware model, SCPI SourceMeter, endpoints."""
