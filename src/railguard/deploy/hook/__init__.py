"""Option B: the server-side ``pre-receive`` hook that tests a push before it lands (docs/hook.md),
and its sh variant that asks the gate instead (docs/gate.md). One home, a module a job:

- :mod:`~railguard.deploy.hook.run`: what the hook does on a push (parse git's ref lines, decide
  which refs to test, test each commit through :func:`railguard.deploy.pipeline.test_tree`, the
  verdict); its pure :func:`~railguard.deploy.hook.run.decide` is also the gate's pre-receive check.
- :mod:`~railguard.deploy.hook.main`: the light entry point git runs on every push (the
  configuration and :mod:`run`, never the CLI or click).
- :mod:`~railguard.deploy.hook.install`: install and uninstall, where a hook goes, and the safe
  writes into a repository another user owns (O_CREAT|O_EXCL|O_NOFOLLOW, fchown and fchmod
  through the descriptor).
- :mod:`~railguard.deploy.hook.remote`: the POSIX sh hook for Forgejo's image (no Python) that
  sends each pushed tree to the gate, installed through the same :mod:`install` code.

Nothing is imported here: the installed hook pays only for what :mod:`main` needs.
"""
