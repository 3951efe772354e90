//! The parameter list's entries: a state-dict name and a shape. The model config
//! (`config`) and the ReLoRA adapters (`relora`) both produce them.

/// One parameter tensor: its state-dict name and shape (linear weights are [out, in]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
}

impl ParamSpec {
    pub(crate) fn new(name: impl Into<String>, shape: &[usize]) -> Self {
        ParamSpec {
            name: name.into(),
            shape: shape.to_vec(),
        }
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}
