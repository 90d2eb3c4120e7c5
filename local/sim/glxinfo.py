#!/usr/bin/env python3
"""Simulated ``dcvfleet-session-glxinfo`` of a batch desktop's container (stdlib only):
``glxinfo -B`` as the DCV session's own OpenGL client sees it (container/session-glxinfo).

    SIM_DCV_STATE=/tmp/host1.json SIM_GL_RENDERER=nvidia python3 local/sim/glxinfo.py desktop

The session must exist in the simulated ``dcv``'s state (else exit 1, as the real script fails
when ``dcv describe-session`` does). ``SIM_GL_RENDERER`` picks the answer: ``nvidia`` (the
default: the container's session with DCV-GL on the GPU) or ``llvmpipe`` (a session without
the GPU X server, OpenGL in software: what a container started with DCVFLEET_GPU_X_SERVER=false
gets). Both answers are real ``glxinfo -B`` outputs from public sources, cited below.
"""

from __future__ import annotations

import json
import os
import sys

#: The simulated ``dcv``'s state file (local/sim/dcv.py, STATE_ENV), read here, never written.
DCV_STATE_ENV = "SIM_DCV_STATE"

#: ``glxinfo -B`` on an NVIDIA GPU (GeForce MX150, driver 455.45.01), as posted on the Ubuntu
#: Forums thread "NVIDIA GP108M [GeForce MX150] driver: N/A even after installation and
#: reboot", post by leo56 on 2020-12-08 (https://ubuntuforums.org, Hardware forum).
NVIDIA = """\
name of display: :1
display: :1  screen: 0
direct rendering: Yes
Memory info (GL_NVX_gpu_memory_info):
    Dedicated video memory: 2048 MB
    Total available memory: 2048 MB
    Currently available dedicated video memory: 1810 MB
OpenGL vendor string: NVIDIA Corporation
OpenGL renderer string: GeForce MX150/PCIe/SSE2
OpenGL core profile version string: 4.6.0 NVIDIA 455.45.01
OpenGL core profile shading language version string: 4.60 NVIDIA
OpenGL core profile context flags: (none)
OpenGL core profile profile mask: core profile

OpenGL version string: 4.6.0 NVIDIA 455.45.01
OpenGL shading language version string: 4.60 NVIDIA
OpenGL context flags: (none)
OpenGL profile mask: (none)

OpenGL ES profile version string: OpenGL ES 3.2 NVIDIA 455.45.01
OpenGL ES profile shading language version string: OpenGL ES GLSL ES 3.20
"""

#: Mesa's software renderer (llvmpipe) on an X server without a GPU: the ``-B`` lines of the
#: ``glxinfo`` output in https://github.com/azriel91/autexousious/issues/4 (Xvfb on GitLab CI,
#: Mesa 13.0.6; the extension lists, which ``-B`` leaves out, are left out).
LLVMPIPE = """\
name of display: :99
display: :99  screen: 0
direct rendering: Yes
Extended renderer info (GLX_MESA_query_renderer):
    Vendor: VMware, Inc. (0xffffffff)
    Device: llvmpipe (LLVM 3.9, 256 bits) (0xffffffff)
    Version: 13.0.6
    Accelerated: no
    Video memory: 3704MB
    Unified memory: no
    Preferred profile: core (0x1)
    Max core profile version: 3.3
    Max compat profile version: 3.0
    Max GLES1 profile version: 1.1
    Max GLES[23] profile version: 3.0
OpenGL vendor string: VMware, Inc.
OpenGL renderer string: Gallium 0.4 on llvmpipe (LLVM 3.9, 256 bits)
OpenGL core profile version string: 3.3 (Core Profile) Mesa 13.0.6
OpenGL core profile shading language version string: 3.30
OpenGL core profile context flags: (none)
OpenGL core profile profile mask: core profile
"""

SAMPLES = {"nvidia": NVIDIA, "llvmpipe": LLVMPIPE}
RENDERER_ENV = "SIM_GL_RENDERER"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: dcvfleet-session-glxinfo <dcv-session-id>", file=sys.stderr)
        return 64
    try:
        with open(os.environ.get(DCV_STATE_ENV, ""), encoding="utf-8") as handle:
            sessions = json.load(handle).get("sessions", [])
    except (OSError, ValueError, AttributeError):
        sessions = []
    if not any(isinstance(s, dict) and s.get("id") == argv[0] for s in sessions):
        print(f"Could not find session '{argv[0]}'", file=sys.stderr)
        return 1
    renderer = os.environ.get(RENDERER_ENV, "nvidia")
    if renderer not in SAMPLES:
        print(f"sim_glxinfo: {RENDERER_ENV} must be one of {sorted(SAMPLES)}", file=sys.stderr)
        return 2
    sys.stdout.write(SAMPLES[renderer])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
