# E-SpikeFormer-173M fine-tuned from the released spike-masked-autoencoder encoder
# (`spikmae_12_768`), whose first stages are C0 = 192 wide (the 173M fine-tuning code writes 196):
# with arch '173m-c192' every encoder weight loads. Convert the MAE checkpoint with
# tools/model_converters/sdtv3_to_mmspike.py and point `load_from` at the result.
_base_ = ['./e-spikeformer-173m_1x4_8xb128_in1k.py']

model = dict(backbone=dict(arch='173m-c192'))
