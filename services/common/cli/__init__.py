"""The command line every ``owc`` subcommand shares (flags, settings and Redis from them) and ``owc config``.

May import every other folder of ``services.common``; none imports it."""
