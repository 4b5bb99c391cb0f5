"""Places files sent to the bot can land, one module each behind one Protocol.

* :mod:`bot.destinations.base`: :class:`~bot.destinations.base.FileDestination` (what the relay
  and the upload worker need of a service), its result types, and the
  :class:`~bot.destinations.base.Destinations` registry by service kind;
* :mod:`bot.destinations.relay`: resumable, retrying uploads through any destination;
* :mod:`bot.destinations.dropbox` (with :mod:`bot.destinations.dropbox_wire`): Dropbox.
"""
