//! A tensor in host memory: the unit that moves between safetensors and a device.

use burn::tensor::{Tensor, TensorData, backend::Backend};

/// A dense row-major f32 tensor in host memory.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Row-major values; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Wraps values and a shape.
    ///
    /// # Panics
    /// If the number of values does not match the shape (an internal invariant).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "host tensor shape and data length agree"
        );
        Self { shape, data }
    }

    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.data.len()
    }

    /// The transpose of a 2-D tensor (`[rows, cols]` becomes `[cols, rows]`).
    pub fn transposed(&self) -> Self {
        let (rows, cols) = (self.shape[0], self.shape[1]);
        let mut out = vec![0.0f32; self.data.len()];
        for r in 0..rows {
            for c in 0..cols {
                out[c * rows + r] = self.data[r * cols + c];
            }
        }
        Self::new(vec![cols, rows], out)
    }

    /// Moves the values onto a device as a tensor of rank `D`.
    pub fn into_device<B: Backend, const D: usize>(self, device: &B::Device) -> Tensor<B, D> {
        Tensor::from_data(TensorData::new(self.data, self.shape), device)
    }

    /// Reads a device tensor back into host memory.
    pub fn from_tensor<B: Backend, const D: usize>(tensor: Tensor<B, D>) -> Self {
        let shape = tensor.dims().to_vec();
        let data = tensor
            .into_data()
            .convert::<f32>()
            .into_vec::<f32>()
            .expect("converted tensor data is f32");
        Self::new(shape, data)
    }
}
