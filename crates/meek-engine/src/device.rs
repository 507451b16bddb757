//! Devices and threads: which device to open, whether this build can open it, and the thread count of Candle's
//! CPU pools.

use candle_core::Device;
use meek_config::DeviceRequest;

use crate::EngineError;

/// Sets the thread count of Candle's CPU pools. Call before the first tensor operation of the process.
pub fn configure_threads(n: usize) {
    // SAFETY: called at start-up, before any thread that reads the environment is spawned.
    unsafe {
        std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// Opens the device asked for: `Auto` tries CUDA, then Metal, then falls back to the CPU.
pub fn open_device(req: DeviceRequest) -> Result<(Device, String), EngineError> {
    let unavailable = |device: String, e: candle_core::Error| EngineError::DeviceUnavailable {
        device,
        detail: e.to_string(),
    };
    match req {
        DeviceRequest::Cpu => Ok((Device::Cpu, "cpu".into())),
        DeviceRequest::Cuda(n) => {
            check_compiled(req)?;
            Device::new_cuda(n)
                .map(|d| (d, format!("cuda:{n}")))
                .map_err(|e| unavailable(format!("cuda:{n}"), e))
        }
        DeviceRequest::Metal => {
            check_compiled(req)?;
            Device::new_metal(0)
                .map(|d| (d, "metal:0".into()))
                .map_err(|e| unavailable("metal".into(), e))
        }
        DeviceRequest::Auto => {
            if cfg!(feature = "cuda")
                && candle_core::utils::cuda_is_available()
                && let Ok(d) = Device::new_cuda(0)
            {
                return Ok((d, "cuda:0".into()));
            }
            if cfg!(feature = "metal")
                && candle_core::utils::metal_is_available()
                && let Ok(d) = Device::new_metal(0)
            {
                return Ok((d, "metal:0".into()));
            }
            Ok((Device::Cpu, "cpu".into()))
        }
    }
}

/// Cargo features of this engine build that change what it can run.
pub fn compiled_features() -> Vec<String> {
    let mut f = Vec::new();
    if cfg!(feature = "cuda") {
        f.push("cuda".to_string());
    }
    if cfg!(feature = "metal") {
        f.push("metal".to_string());
    }
    f
}

/// Refuses a device that this build cannot open at all, before anything is downloaded or loaded.
pub fn check_compiled(req: DeviceRequest) -> Result<(), EngineError> {
    match req {
        DeviceRequest::Cuda(n) if !cfg!(feature = "cuda") => Err(EngineError::DeviceNotCompiled {
            device: format!("cuda:{n}"),
            feature: "cuda",
        }),
        DeviceRequest::Metal if !cfg!(feature = "metal") => Err(EngineError::DeviceNotCompiled {
            device: "metal".into(),
            feature: "metal",
        }),
        _ => Ok(()),
    }
}
