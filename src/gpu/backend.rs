//! Backend names as users type them (`--backend vulkan`), and what each maps to in wgpu.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    Vulkan,
    Metal,
    Dx12,
    Gl,
    /// The browser's WebGPU (only in a wasm32 build).
    WebGpu,
    /// The best adapter available: discrete GPU first, software renderers last.
    #[default]
    Auto,
}

impl Backend {
    pub const ALL: [Backend; 6] = [
        Backend::Vulkan,
        Backend::Metal,
        Backend::Dx12,
        Backend::Gl,
        Backend::WebGpu,
        Backend::Auto,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Backend::Vulkan => "vulkan",
            Backend::Metal => "metal",
            Backend::Dx12 => "dx12",
            Backend::Gl => "gl",
            Backend::WebGpu => "webgpu",
            Backend::Auto => "auto",
        }
    }

    pub fn wgpu_backends(self) -> wgpu::Backends {
        match self {
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
            Backend::Gl => wgpu::Backends::GL,
            Backend::WebGpu => wgpu::Backends::BROWSER_WEBGPU,
            Backend::Auto => wgpu::Backends::all(),
        }
    }

    /// Whether this build of wgtrain can use the backend at all on this platform.
    pub fn compiled_in(self) -> bool {
        let enabled = wgpu::Instance::enabled_backend_features();
        match self {
            Backend::Auto => !enabled.is_empty(),
            other => enabled.intersects(other.wgpu_backends()),
        }
    }

    /// What a user without an adapter for this backend should do.
    pub fn install_hint(self) -> &'static str {
        match self {
            Backend::Vulkan | Backend::Auto => {
                "install a Vulkan driver for your GPU; on Linux without a GPU, install Mesa's \
                 lavapipe (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`), \
                 then check with `wgtrain devices`"
            }
            Backend::Metal => "Metal needs macOS or iOS; on other systems use --backend vulkan",
            Backend::Dx12 => "DirectX 12 needs Windows 10 or later; elsewhere use --backend vulkan",
            Backend::Gl => {
                "install an OpenGL ES 3 / EGL driver (Debian/Ubuntu: `apt-get install libegl1 \
                 libgl1-mesa-dri`), or use --backend vulkan"
            }
            Backend::WebGpu if cfg!(target_arch = "wasm32") => {
                "the browser offered no WebGPU adapter (WebGPU is off, blocked, or the GPU is \
                 unsupported)"
            }
            Backend::WebGpu => {
                "WebGPU is only available in a browser build (wasm32); natively use --backend vulkan, \
                 metal or dx12"
            }
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        let found = match lower.as_str() {
            "vk" => Some(Backend::Vulkan),
            "directx" | "d3d12" => Some(Backend::Dx12),
            "gles" | "opengl" => Some(Backend::Gl),
            "browser" => Some(Backend::WebGpu),
            _ => Backend::ALL.into_iter().find(|b| b.name() == lower),
        };
        found.ok_or_else(|| Error::UnknownBackend(s.to_string()))
    }
}

pub(crate) fn backend_of(b: wgpu::Backend) -> &'static str {
    match b {
        wgpu::Backend::Vulkan => "vulkan",
        wgpu::Backend::Metal => "metal",
        wgpu::Backend::Dx12 => "dx12",
        wgpu::Backend::Gl => "gl",
        wgpu::Backend::BrowserWebGpu => "webgpu",
        _ => "other",
    }
}
