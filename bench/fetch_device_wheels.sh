#!/usr/bin/env bash
# Download, on a machine with the package registry, the wheels the GPU machine lacks (soundfile, librosa and
# the dependencies its image does not have) into .whl/ (ignored by git), for Python 3.12 on x86-64 Linux.
# The versions are those of requirements.txt. bench/gpu_session.sh installs them on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
wheels=(
    soundfile==0.14.0 cffi==2.1.1 pycparser==3.12
    librosa==0.11.0 audioread==3.1.0 decorator==5.3.1 pooch==1.9.0 platformdirs==4.14.7 soxr==1.1.0
    pystoi==0.4.1 G722==1.2.8
    # python -m waveglow.export and tests/export (torch's own deps, sympy and typing_extensions, are there)
    onnx==1.23.2 onnxscript==0.7.2 onnx-ir==1.1.0 onnxruntime==1.32.0 ml_dtypes==0.7.0 protobuf==7.36.2
    flatbuffers==25.12.19
)
# pesq and pysptk ship as source only: on the GPU machine the PESQ metric is absent (with its reason) and the
# MCD reference test cannot import pysptk; run those CPU tests here.
platforms=()
for tag in manylinux_2_34_x86_64 manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
    manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "${wheels[@]}"
ls -l .whl
