//! Every shader the library embeds, as the device gets it (its file in `shaders/` with the
//! `shaders/prelude/` snippets it names appended), parses, validates, and translates with naga
//! to SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL (GL): the evidence on a machine
//! without those GPUs that the kernels will compile there. Also checks the library embeds
//! every file, and composes each shader from the snippets its `// prelude:` line names.

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use std::path::{Path, PathBuf};
use wgtrain::gpu::shaders::{ShaderSource, ALL, MATMUL_EPILOGUES};

fn shaders_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders")
}

/// The `.wgsl` files directly in `dir`, sorted.
fn wgsl_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wgsl"))
        .collect();
    files.sort();
    files
}

fn shader_files() -> Vec<PathBuf> {
    wgsl_files(&shaders_dir())
}

fn prelude_files() -> Vec<PathBuf> {
    wgsl_files(&shaders_dir().join("prelude"))
}

fn file_name(path: &Path) -> &str {
    path.file_name().unwrap().to_str().unwrap()
}

/// The snippets a shader's first line names: `// prelude: grid, tree_sum3`.
fn prelude_line(code: &str) -> Vec<&str> {
    let first = code.lines().next().unwrap_or("");
    first
        .strip_prefix("// prelude:")
        .map_or(Vec::new(), |names| {
            names.split(',').map(str::trim).collect()
        })
}

fn translate(src: &str) -> Result<usize, String> {
    let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
    // The portable baseline: no optional capabilities, as WebGPU guarantees, except for the
    // variants the host runs only where the adapter has subgroups.
    let caps = if src.contains("subgroup") {
        Capabilities::SUBGROUP
    } else {
        Capabilities::empty()
    };
    let info = Validator::new(ValidationFlags::all(), caps)
        .validate(&module)
        .map_err(|e| e.emit_to_string(src))?;
    // Pipeline-overridable constants (attention_rows' HD4) take their defaults, as the
    // device does for any the host leaves unset.
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        None,
        &Default::default(),
    )
    .map_err(|e| format!("overrides: {e}"))?;
    let (module, info) = (module.as_ref(), info.as_ref());
    spv::write_vec(module, info, &spv::Options::default(), None)
        .map_err(|e| format!("SPIR-V: {e}"))?;
    let mut entries = 0;
    for ep in &module.entry_points {
        if ep.stage != naga::ShaderStage::Compute {
            continue;
        }
        entries += 1;
        let entry = Some((ep.stage, ep.name.clone()));
        msl::write_string(
            module,
            info,
            &msl::Options::default(),
            &msl::PipelineOptions {
                entry_point: entry.clone(),
                ..Default::default()
            },
        )
        .map_err(|e| format!("MSL {}: {e}", ep.name))?;
        let hlsl_pipeline = hlsl::PipelineOptions {
            entry_point: entry.clone(),
        };
        let hlsl_options = hlsl::Options::default();
        let mut out = String::new();
        hlsl::Writer::new(&mut out, &hlsl_options, &hlsl_pipeline)
            .write(module, info, None)
            .map_err(|e| format!("HLSL {}: {e}", ep.name))?;
        let glsl_pipeline = glsl::PipelineOptions {
            shader_stage: ep.stage,
            entry_point: ep.name.clone(),
            multiview: None,
        };
        let glsl_options = glsl::Options::default();
        let mut out = String::new();
        glsl::Writer::new(
            &mut out,
            module,
            info,
            &glsl_options,
            &glsl_pipeline,
            naga::proc::BoundsCheckPolicies::default(),
        )
        .and_then(|mut w| w.write().map(|_| ()))
        .map_err(|e| format!("GLSL {}: {e}", ep.name))?;
    }
    Ok(entries)
}

#[test]
fn every_shader_translates_to_every_backend_language() {
    assert!(!ALL.is_empty());
    let mut failures = Vec::new();
    for shader in ALL {
        match translate(shader.code) {
            Ok(0) => failures.push(format!("{}: no compute entry point", shader.file)),
            Ok(_) => {}
            Err(e) => failures.push(format!("{} (with its prelude): {e}", shader.file)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_library_embeds_every_shader_file() {
    let mut embedded: Vec<&str> = ALL.iter().map(|s| s.file).collect();
    embedded.sort_unstable();
    embedded.dedup();
    for f in shader_files() {
        let name = file_name(&f);
        assert!(
            embedded.contains(&name),
            "{name} is not listed in src/gpu/shaders.rs"
        );
    }
    assert_eq!(embedded.len(), shader_files().len());
}

/// Each shader's registry entry names the snippets its `// prelude:` line names, and what the
/// device compiles is the file followed by those snippets; every snippet is used somewhere.
#[test]
fn each_shader_gets_the_prelude_its_first_line_names() {
    let snippet = |name: &str| -> String {
        let path = shaders_dir().join("prelude").join(format!("{name}.wgsl"));
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("prelude snippet {}: {e}", path.display()))
    };
    for shader in ALL {
        let ShaderSource {
            name,
            file,
            prelude,
            epilogue,
            code,
        } = shader;
        let text = std::fs::read_to_string(shaders_dir().join(file)).unwrap();
        assert_eq!(
            &prelude_line(&text),
            prelude,
            "{file}: its `// prelude:` line and its entry in src/gpu/shaders.rs differ"
        );
        let mut composed = text;
        for snippet_name in prelude.iter().chain(epilogue.iter()) {
            composed.push('\n');
            composed.push_str(&snippet(snippet_name));
        }
        assert!(*code == composed, "{name}: the embedded source is stale");
        let expected_name = std::iter::once(*file)
            .chain(epilogue.iter().copied())
            .collect::<Vec<_>>()
            .join("+");
        assert_eq!(*name, expected_name);
    }
    // Every matmul is compiled with exactly the epilogues the registry lists, in order.
    let matmuls: Vec<_> = ALL.iter().filter(|s| !s.epilogue.is_empty()).collect();
    assert!(!matmuls.is_empty());
    for group in matmuls.chunks(MATMUL_EPILOGUES.len()) {
        let epilogues: Vec<&[&str]> = group.iter().map(|s| s.epilogue).collect();
        assert_eq!(epilogues, MATMUL_EPILOGUES, "{}", group[0].file);
        assert!(group.iter().all(|s| s.file == group[0].file));
    }
    let names: Vec<&str> = ALL.iter().map(|s| s.name).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "pipeline names must be unique");
    for f in prelude_files() {
        let name = file_name(&f).trim_end_matches(".wgsl");
        assert!(
            ALL.iter()
                .any(|s| s.prelude.contains(&name) || s.epilogue.contains(&name)),
            "prelude/{name}.wgsl is named by no shader"
        );
    }
}

/// Float literals a browser accepts: Chrome's WGSL compiler (Tint) rejects a literal that
/// rounds past f32's range, e.g. `-3.40282347e38`, which naga quietly accepts. Scan every
/// decimal literal with a fraction or exponent and check it fits.
#[test]
fn float_literals_fit_in_f32() {
    let mut bad = Vec::new();
    for path in shader_files().into_iter().chain(prelude_files()) {
        let code = std::fs::read_to_string(&path).unwrap();
        for (n, line) in code.lines().enumerate() {
            let line = line.split("//").next().unwrap_or("");
            let bytes = line.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                let starts = bytes[i].is_ascii_digit()
                    && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_'));
                if !starts {
                    i += 1;
                    continue;
                }
                let mut j = i;
                while j < bytes.len()
                    && (bytes[j].is_ascii_alphanumeric()
                        || bytes[j] == b'.'
                        || ((bytes[j] == b'-' || bytes[j] == b'+')
                            && matches!(bytes[j - 1], b'e' | b'E')))
                {
                    j += 1;
                }
                let lit = &line[i..j];
                let is_hex = lit.starts_with("0x") || lit.starts_with("0X");
                let body = lit.trim_end_matches(['f', 'h']);
                if !is_hex && (body.contains('.') || body.contains(['e', 'E'])) {
                    match body.parse::<f64>() {
                        Ok(v) if v.abs() <= f32::MAX as f64 => {}
                        _ => bad.push(format!("{}:{}: {lit}", path.display(), n + 1)),
                    }
                }
                i = j;
            }
        }
    }
    assert!(
        bad.is_empty(),
        "float literals outside f32's range (use 0x1.fffffep+127f): {bad:?}"
    );
}
