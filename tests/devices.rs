//! Adapter choice and its errors: an unknown backend name and a missing adapter each give a
//! message that says what to do; `wgtrain devices` lists the adapter tests run on.

mod common;

use common::CliOutput;
use wgtrain::{Backend, Error, Gpu, GpuOptions};

fn wgtrain(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let CliOutput { ok, stdout, stderr } = common::wgtrain(args).envs(env).run();
    (ok, stdout, stderr)
}

#[test]
fn backend_names_parse_and_unknown_ones_are_refused() {
    for b in Backend::ALL {
        assert_eq!(b.name().parse::<Backend>().unwrap(), b);
    }
    assert_eq!("Vulkan".parse::<Backend>().unwrap(), Backend::Vulkan);
    let msg = "cuda".parse::<Backend>().unwrap_err().to_string();
    assert!(msg.contains("unknown backend 'cuda'"), "{msg}");
    assert!(
        msg.contains("vulkan, metal, dx12, gl, webgpu, auto"),
        "{msg}"
    );
}

#[test]
fn cli_refuses_an_unknown_backend() {
    let (ok, _, err) = wgtrain(&["devices", "--backend", "cuda"], &[]);
    assert!(!ok);
    assert!(err.contains("unknown backend 'cuda'"), "{err}");
}

#[test]
fn missing_vulkan_driver_says_how_to_install_one() {
    // Point the Vulkan loader at no driver at all: the state of a machine without a GPU
    // driver or lavapipe.
    let none = [
        ("VK_ICD_FILENAMES", "/nonexistent/icd.json"),
        ("VK_DRIVER_FILES", "/nonexistent/icd.json"),
    ];
    let (ok, _, err) = wgtrain(&["devices", "--backend", "vulkan"], &none);
    assert!(!ok);
    assert!(
        err.contains("no GPU adapter found for backend 'vulkan'"),
        "{err}"
    );
    assert!(err.contains("apt-get install mesa-vulkan-drivers"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_backend_this_platform_lacks_is_a_clear_error() {
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        let err = Gpu::new_blocking(GpuOptions {
            backend: Backend::Metal,
            ..Default::default()
        })
        .err()
        .unwrap();
        assert!(matches!(err, Error::NoAdapter(_)));
        assert!(err.to_string().contains("Metal needs macOS"), "{err}");
    }
    let err = Gpu::new_blocking(GpuOptions {
        backend: Backend::WebGpu,
        ..Default::default()
    })
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("only available in a browser"),
        "{err}"
    );
}

#[test]
fn devices_lists_the_adapter_with_its_limits() {
    let (ok, out, err) = wgtrain(&["devices", "--backend", common::backend().name()], &[]);
    assert!(ok, "{err}");
    for needle in [
        "backend:",
        "max storage binding:",
        "workgroup storage:",
        "subgroup sizes:",
        "shader-f16:",
        "timestamp queries:",
        "default for --backend",
    ] {
        assert!(out.contains(needle), "missing '{needle}' in:\n{out}");
    }
}
