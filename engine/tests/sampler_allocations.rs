//! The cached sampler never allocates once built, whatever the model's
//! options and whichever kernels run: an allocator that counts this
//! thread's allocations wraps the system one for this test binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use reverie_engine::predictor::PredictorConfig;
use reverie_engine::sampler::{Kernels, Sampler};
use reverie_engine::tone_prior::TonePriorConfig;
use reverie_engine::wavenet::{WavenetConfig, WavenetModel};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call goes to the system allocator unchanged; the count is
// a thread-local cell, which allocates nothing itself.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
        // SAFETY: as for `alloc` and `dealloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn stepping_sampling_priming_and_reset_never_allocate() {
    let plain = WavenetConfig {
        dilations: vec![1, 2, 4, 8, 16],
        residual_channels: 16,
        dilation_channels: 16,
        skip_channels: 32,
        classes: 256,
        predictor: None,
        pre_emphasis: false,
        emphasis_128ths: reverie_engine::emphasis::LPCNET_128THS,
        residual_target: false,
        tone_aware: false,
        tone_prior: None,
        dc_block: false,
    };
    let predicting = WavenetConfig {
        predictor: Some(PredictorConfig::for_rate(16_000)),
        ..plain.clone()
    };
    // Both ways of sampling that hear the audio: tone-aware draws and the
    // tone prior; and a coded model whose feedback goes through the DC
    // blocker.
    let toned = WavenetConfig {
        tone_aware: true,
        tone_prior: Some(TonePriorConfig {
            weight: 1.0,
            max_trust: 0.9,
            mix: 0.1,
        }),
        ..predicting.clone()
    };
    let audio: Vec<f32> = (0..3_000).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
    let classes: Vec<usize> = (0..3_000).map(|i| 100 + i % 50).collect();
    let blocked = WavenetConfig {
        pre_emphasis: true,
        residual_target: true,
        dc_block: true,
        ..predicting.clone()
    };
    for config in [plain, predicting, toned, blocked] {
        let model = WavenetModel::init(config, 16_000, 3, &Device::Cpu).unwrap();
        for kernels in [
            Kernels::Portable,
            Kernels::Avx2,
            Kernels::Avx512,
            Kernels::Avx512Bf16,
            Kernels::Avx512Int8,
            Kernels::Avx2Int8,
        ] {
            let mut sampler = Sampler::from_model(&model).unwrap();
            if !sampler.use_kernels(kernels) {
                continue;
            }
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let mut out = vec![0.0; 2_000];
            let n = allocations_in(|| {
                sampler.prime(&audio);
                sampler.prime_classes(&classes);
                sampler.generate_into(&mut out, 1.0, &mut rng);
                for &c in &classes[..500] {
                    std::hint::black_box(sampler.step(c));
                }
                sampler.reset();
                sampler.generate_into(&mut out, 0.0, &mut rng);
            });
            let options = model.config.options_text();
            assert_eq!(n, 0, "{kernels:?}, options {options}: {n} allocations");
            assert!(out.iter().any(|&x| x != 0.0), "it generated something");
        }
    }
}
