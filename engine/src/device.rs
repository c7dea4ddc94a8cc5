//! Picking the compute device at run time: the GPU when this build has the
//! `cuda` feature and a GPU answers, the CPU otherwise.

use candle_core::Device;

/// The device in use, with a description for logs and the plugin's status.
#[derive(Debug, Clone)]
pub struct ComputeDevice {
    /// The candle device.
    pub device: Device,
    /// What it is, for people ("CPU", "CUDA GPU 0").
    pub description: String,
}

/// Whether this build was compiled with GPU support.
pub const CUDA_BUILD: bool = cfg!(feature = "cuda");

/// Chooses the GPU if `prefer_gpu` is set, this build supports CUDA and a
/// GPU can be opened; otherwise the CPU. The description says why when it
/// falls back.
pub fn select(prefer_gpu: bool) -> ComputeDevice {
    let cpu = |why: &str| ComputeDevice {
        device: Device::Cpu,
        description: if why.is_empty() {
            "CPU".to_string()
        } else {
            format!("CPU ({why})")
        },
    };
    if !prefer_gpu {
        return cpu("");
    }
    if !CUDA_BUILD {
        return cpu("this build has no CUDA support");
    }
    open_gpu().unwrap_or_else(|why| cpu(&why))
}

#[cfg(feature = "cuda")]
fn open_gpu() -> Result<ComputeDevice, String> {
    // A missing driver or library must not take the process down: candle
    // loads CUDA dynamically, and any failure here just means "use the CPU".
    match std::panic::catch_unwind(|| Device::new_cuda(0)) {
        Ok(Ok(device)) => Ok(ComputeDevice {
            device,
            description: "CUDA GPU 0".to_string(),
        }),
        Ok(Err(e)) => Err(format!("no usable GPU: {e}")),
        Err(_) => Err("no usable GPU: the CUDA libraries could not be loaded".to_string()),
    }
}

#[cfg(not(feature = "cuda"))]
fn open_gpu() -> Result<ComputeDevice, String> {
    Err("this build has no CUDA support".to_string())
}
