"""The workspace: server-rendered pages under ``/app/`` for reps and managers (issue 17).

``routes.build`` returns a Starlette ``Mount`` that the HTTP door adds to its routes; the
workspace's own ports (``ports.WorkspacePorts``) are built by the composition root."""
