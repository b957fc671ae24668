"""Stand-ins for services that cannot run here (CapRover, Forgejo), following the documented
behaviour in shared/reference/forgejo-caprover.md, quirks included."""
