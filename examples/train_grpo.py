r"""Train a Qwen-VL policy with GRPO against the reasoning-segmentation environment.

Examples:
    python examples/train_grpo.py --preset tiny-cpu --steps 4 --output-dir runs/tiny
    python examples/train_grpo.py --preset tiny-cpu --steps 8 --output-dir runs/tiny --resume
    accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no \
        examples/train_grpo.py --preset tiny-cpu --steps 2 --output-dir runs/tiny-ddp   # 2 CPU processes (gloo)
    python examples/train_grpo.py --preset qwen2.5-vl-3b-lora-1gpu \
        --model-name-or-path /models/Qwen2.5-VL-3B-Instruct \
        --data-root /data/refCOCOg_9k_840 --output-dir runs/3b-lora
    accelerate launch --config_file examples/accelerate/deepspeed_zero2.yaml examples/train_grpo.py \
        --preset qwen2.5-vl-3b-full-8gpu --model-name-or-path /models/Qwen2.5-VL-3B-Instruct --output-dir runs/3b

See docs/agent.md for memory estimates and the full commands.
"""

import os
import sys

from segzero_agents.grpo import train
from segzero_agents.presets import parse_args

from segzero_env.hf.weights import ModelNotFoundError
from segzero_env.segmenters.weights import WeightsNotFoundError

if __name__ == "__main__":
    try:
        train(parse_args())
    except (ModelNotFoundError, WeightsNotFoundError) as err:  # their messages say where we looked and what to do
        sys.exit(f"train_grpo.py: error: {err}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Every rank has written its outputs and torn its process group down. Leave without the
        # interpreter's teardown, where gloo's threads can abort a finished rank
        # ("terminate called without an active exception") and turn a good run into exit code 1.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
