// The sizes a shape-specialised convolution is built for, as `override` constants set when the
// pipeline is made (src/kernels/conv_fast.rs, `size_consts`): shared by conv_fast.wgsl and
// conv_strided.wgsl, which src/kernels/mod.rs prefixes with this file. The defaults are LeNet-5's
// first layer.

override CIN: u32 = 1u;
override H: u32 = 28u;
override W: u32 = 28u;
override COUT: u32 = 6u;
override KH: u32 = 5u;
override KW: u32 = 5u;
override PH: u32 = 2u;
override PW: u32 = 2u;
override OH: u32 = 28u;
override OW: u32 = 28u;
