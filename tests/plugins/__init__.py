"""Plugins the tests load through ``BOT_PLUGINS``, as a deployer's would be loaded."""
