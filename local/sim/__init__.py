"""The simulated machines of the local stack (docs/architecture.md, local stack).

* ``hosts``: a simulated host for each fleet instance, following its EC2 state, running the real
  agent; ``containers``: Batch jobs placed on simulated capacity, each in a container run on a
  host of its own; ``machine``: what both are made of (workdir, ``bin/`` shims, ``/proc/stat``).
* ``control``: ``control_url``, the HTTP controls over all of it.
* The stand-ins a simulated host finds on its ``PATH``: ``dcv``, ``nvidia_smi``, ``docker``,
  ``users`` (``id``, ``useradd``, ``chpasswd``, ``powershell.exe``), ``typeperf`` and
  ``glxinfo``. They run as scripts (``python -S <path>``), so they use the standard library only
  and import nothing from this project.
"""
