"""The reference implementation's generator on this GPU: LatentSync's own `LipsyncPipeline.__call__`
(its U-Net3D, diffusers' AutoencoderKL and DDIMScheduler, optionally the DeepCache package as
`scripts/inference.py --enable_deepcache` sets it up), imported from a LatentSync checkout that the
user provides, at random weights, over one clip of aligned faces. It is the same-GPU baseline for
`InferenceCheck bench-clip`.

    python3 reference_generator.py --latentsync DIR --resolution 256 [--frames 250] [--deepcache 3]
        [--steps 20] [--guidance 1.5] [--profile [--trace TRACE.json]]

Only what is not model work is replaced, so the timed part is the reference's model time (what its
maintainers quote: "28 s of model forward per 10 s clip on an A100"): face detection and affine
alignment (`loop_video`), the restore into full frames (`restore_video`), reading and writing media
and the Whisper encoder (its features are given; it is < 0.1 % of the time on either side).
The per-window code — CPU preparation of the masked/reference images, VAE encodes, the denoising loop
with classifier-free guidance, VAE decode, pasting the surrounding pixels back, the list of decoded
windows kept on the GPU — is the reference's own. Prints one JSON line.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import types

import torch


def stub_module(name, **attributes):
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def load_reference(root):
    """Imports latentsync.models.unet and latentsync.pipelines.lipsync_pipeline from `root` with the
    media/face-detection dependencies they import at module level replaced by empty modules."""
    for name in ("cv2", "decord", "soundfile", "kornia", "insightface", "mediapipe", "imageio", "matplotlib",
                 "matplotlib.pyplot", "python_speech_features", "librosa"):
        if name not in sys.modules:
            try:
                __import__(name)
            except Exception:
                stub_module(name, write=lambda *a, **k: None)
    try:
        import torchvision  # noqa: F401  (the pipeline imports it; the timed code does not use it)
    except Exception:
        tv = stub_module("torchvision")
        tv.transforms = stub_module("torchvision.transforms", InterpolationMode=types.SimpleNamespace(BICUBIC=3))
    # diffusers 0.32 (the reference's pin) imports transformers' Flax names when transformers is
    # installed; a newer transformers lacks them. Nothing here needs transformers.
    import diffusers.utils.import_utils
    diffusers.utils.import_utils._transformers_available = False
    sys.path.insert(0, root)
    import latentsync  # noqa: F401
    stub_module("latentsync.utils.util", zero_rank_log=lambda logger, message: None,
                read_video=None, read_audio=None, write_video=lambda *a, **k: None, check_ffmpeg_installed=lambda: None)
    stub_module("latentsync.utils.image_processor", ImageProcessor=None, load_fixed_mask=None)
    stub_module("latentsync.whisper.audio2feature", Audio2Feature=None)
    from latentsync.models.unet import UNet3DConditionModel
    from latentsync.pipelines import lipsync_pipeline
    return UNet3DConditionModel, lipsync_pipeline


class StandInImageProcessor:
    """`ImageProcessor.prepare_masks_and_masked_images(faces, affine_transform=False)` for faces that
    are already R×R: the reference resizes them to R (a no-op size), normalises each frame on the CPU
    and multiplies by the mask, frame by frame as here."""

    def __init__(self, resolution, device, mask_image):
        self.mask_image = mask_image

    def prepare_masks_and_masked_images(self, images, affine_transform=False):
        results = []
        for image in images:
            pixel_values = (image / 255.0 - 0.5) / 0.5
            results.append((pixel_values, pixel_values * self.mask_image, self.mask_image[0:1]))
        pixel_values, masked, masks = zip(*results)
        return torch.stack(pixel_values), torch.stack(masked), torch.stack(masks)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--latentsync", required=True, help="a checkout of github.com/bytedance/LatentSync")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=1.5)
    parser.add_argument("--deepcache", type=int, default=0, help="cache interval; 0 = off")
    parser.add_argument("--profile", action="store_true", help="also print the CUDA kernel time of one U-Net forward by kind")
    parser.add_argument("--trace", help="with --profile: also write that forward's Chrome trace here (for kernel_summary.py)")
    args = parser.parse_args()

    import yaml
    from diffusers import AutoencoderKL, DDIMScheduler

    UNet3DConditionModel, lipsync_pipeline = load_reference(args.latentsync)
    config_name = "stage2_512.yaml" if args.resolution == 512 else "stage2.yaml"
    with open(os.path.join(args.latentsync, "configs", "unet", config_name)) as f:
        model_config = yaml.safe_load(f)["model"]
    # OmegaConf (which the reference loads it with) reads `1e-5` as a float; PyYAML as a string.
    for key, value in model_config.items():
        if isinstance(value, str):
            try:
                model_config[key] = float(value)
            except ValueError:
                pass
    device, dtype = "cuda", torch.float16  # scripts/inference.py: fp16 when compute capability > 7
    torch.manual_seed(1247)
    unet = UNet3DConditionModel.from_config(model_config).to(dtype=dtype)
    unet_parameters = sum(p.numel() for p in unet.parameters())
    # stabilityai/sd-vae-ft-mse's config.json.
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32, sample_size=256,
                        down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                        block_out_channels=[128, 256, 512, 512], act_fn="silu").to(dtype=dtype)
    vae.config.scaling_factor = 0.18215
    vae.config.shift_factor = 0
    scheduler = DDIMScheduler.from_pretrained(os.path.join(args.latentsync, "configs"))

    pipeline = lipsync_pipeline.LipsyncPipeline(vae=vae, audio_encoder=None, unet=unet, scheduler=scheduler).to(device)
    if args.deepcache:
        from DeepCache import DeepCacheSDHelper
        helper = DeepCacheSDHelper(pipe=pipeline)
        helper.set_params(cache_interval=args.deepcache, cache_branch_id=0)
        helper.enable()

    r = args.resolution
    # The released mask: ones, the lower-middle (mouth) region zero.
    mask = torch.ones(3, r, r, dtype=torch.float64)
    mask[:, r * 5 // 8: r * 15 // 16, r // 8: r * 7 // 8] = 0
    faces_per_call = {}

    def loop_video(whisper_chunks, video_frames):
        n = len(whisper_chunks)
        faces = faces_per_call[n]
        return video_frames[:n], faces, [[0, 0, r, r]] * n, [None] * n

    def restore_video(faces, video_frames, boxes, affine_matrices):
        return faces.cpu().numpy()  # the reference restores on the GPU and hands NumPy frames to the writer

    pipeline.loop_video = loop_video
    pipeline.restore_video = restore_video
    lipsync_pipeline.ImageProcessor = StandInImageProcessor
    lipsync_pipeline.load_fixed_mask = lambda resolution, path: mask
    lipsync_pipeline.read_audio = lambda path: torch.zeros(16000 * 60)
    lipsync_pipeline.sf = types.SimpleNamespace(write=lambda *a, **k: None)
    lipsync_pipeline.subprocess = types.SimpleNamespace(run=lambda *a, **k: None)
    lipsync_pipeline.tqdm = types.SimpleNamespace(tqdm=lambda iterable, **k: iterable)
    pipeline.set_progress_bar_config(disable=True)

    def run(frames):
        chunks = [torch.randn(50, 384) for _ in range(frames)]
        pipeline.audio_encoder = types.SimpleNamespace(audio2feat=lambda path: None, feature2chunks=lambda feature_array, fps: chunks)
        faces_per_call[frames] = torch.randint(0, 256, (frames, 3, r, r), dtype=torch.uint8)
        lipsync_pipeline.read_video = lambda path, use_decord=False: torch.zeros(frames, 8, 8, 3, dtype=torch.uint8).numpy()
        with tempfile.TemporaryDirectory() as temp:
            torch.cuda.synchronize()
            start = time.perf_counter()
            pipeline(video_path="in.mp4", audio_path="in.wav", video_out_path=os.path.join(temp, "out.mp4"), num_frames=16,
                     num_inference_steps=args.steps, guidance_scale=args.guidance, weight_dtype=dtype, width=r, height=r,
                     temp_dir=os.path.join(temp, "work"))
            torch.cuda.synchronize()
            return time.perf_counter() - start

    run(16)  # warm-up: cuDNN heuristics, allocator
    torch.cuda.reset_peak_memory_stats()
    seconds = run(args.frames)
    result = {"impl": "reference", "model": "generator", "dtype": "float16", "resolution": r, "deepcache": args.deepcache,
              "steps": args.steps, "guidance": args.guidance, "frames": args.frames, "unet_parameters": unet_parameters,
              "seconds": seconds, "frames_per_s": args.frames / seconds, "peak_bytes": torch.cuda.max_memory_allocated(),
              "torch": torch.__version__}

    if args.profile:
        from torch.utils.flop_counter import FlopCounterMode
        h = r // 8
        sample = torch.randn(2, 13, 16, h, h, device=device, dtype=dtype)
        context = torch.randn(32, 50, 384, device=device, dtype=dtype)
        timestep = torch.tensor(501, device=device)
        with torch.no_grad():
            counter = FlopCounterMode(display=False)
            with counter:
                unet(sample, timestep, encoder_hidden_states=context)
            result["unet_flops_per_forward"] = counter.get_total_flops()
            for _ in range(3):
                unet(sample, timestep, encoder_hidden_states=context)
            torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(10):
                unet(sample, timestep, encoder_hidden_states=context)
            torch.cuda.synchronize()
            result["unet_forward_s"] = (time.perf_counter() - start) / 10
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                unet(sample, timestep, encoder_hidden_states=context)
                torch.cuda.synchronize()
        if args.trace:
            prof.export_chrome_trace(args.trace)
        # Kernels grouped by kernel_summary.py's classifier, so both implementations' profiles read alike.
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from kernel_summary import kind

        def device_ms(event):
            us = getattr(event, "self_device_time_total", None)
            return (us if us is not None else event.self_cuda_time_total) / 1e3

        kernels = [e for e in prof.key_averages() if device_ms(e) > 0]
        kinds = {}
        for event in kernels:
            kinds[kind(event.key)] = kinds.get(kind(event.key), 0.0) + device_ms(event)
        result["unet_kernel_ms"] = sum(device_ms(e) for e in kernels)
        result["unet_kernels"] = sum(e.count for e in kernels)
        result["unet_kernel_ms_by_kind"] = kinds
        result["unet_top_kernels"] = [(e.key[:90], round(device_ms(e), 3), e.count) for e in sorted(kernels, key=device_ms, reverse=True)[:25]]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
