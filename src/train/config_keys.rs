//! Naming the key behind a config error: serde names an unknown key, but not where a value
//! of the wrong type sits, so each leaf is tried alone.

/// The dotted path of the first leaf of `tree` that a `T` holding only that leaf (under
/// its sections) rejects, with serde's complaint. `path` is the walk so far.
pub(super) fn first_bad_key<T: serde::de::DeserializeOwned>(
    tree: &serde_yaml::Value,
    path: &mut Vec<serde_yaml::Value>,
) -> Option<(String, String)> {
    let serde_yaml::Value::Mapping(map) = tree else {
        return None;
    };
    for (k, v) in map {
        path.push(k.clone());
        // The config with just this key (and its sections above).
        let mut single = v.clone();
        for key in path.iter().rev() {
            let mut m = serde_yaml::Mapping::new();
            m.insert(key.clone(), single);
            single = serde_yaml::Value::Mapping(m);
        }
        if let Err(e) = serde_yaml::from_value::<T>(single) {
            let found = match v {
                serde_yaml::Value::Mapping(_) => first_bad_key::<T>(v, path),
                _ => None,
            };
            let name = |p: &[serde_yaml::Value]| {
                p.iter()
                    .map(|k| k.as_str().map_or_else(|| format!("{k:?}"), str::to_string))
                    .collect::<Vec<_>>()
                    .join(".")
            };
            let out = found.unwrap_or_else(|| (name(path), e.to_string()));
            path.pop();
            return Some(out);
        }
        path.pop();
    }
    None
}
