"""OAuth 2.0 with the services connections use.

* :mod:`bot.providers.oauth2`: the generic client (codes, refresh tokens, revocation, account)
  and the :class:`~bot.providers.oauth2.OAuthHooks` a service kind may bring;
* :mod:`bot.providers.standard`: the hooks of plain OAuth (RFC 7009, ``userinfo_url``);
* :mod:`bot.providers.kinds`: which kind has which hooks;
* :mod:`bot.providers.oauth_wire`: wire helpers the client and the hooks share.

Where files land is :mod:`bot.destinations`.
"""
