"""PowerView core library: MV2 logger files to InfluxDB line protocol and everything around it."""

__version__ = "0.1.0"
