"""The file flow (CONTRACT §7): files sent to the bot, kept and uploaded to a destination.

* :mod:`bot.files.service`: :class:`~bot.files.service.FileService`, the ``bot.context.Files``
  that handlers use, and the worker's start and stop;
* :mod:`bot.files.intake`: accepting attachments, ``status``, Retry, Cancel, resuming;
* :mod:`bot.files.worker`: the supervised upload worker;
* :mod:`bot.files.sources`: the bytes of a file (its URL, or the copy kept in the store);
* :mod:`bot.files.names`: clean file names, human sizes;
* :mod:`bot.files.wording`: everything the flow says to people.
"""
