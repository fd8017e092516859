"""InputError, the API's error for arguments it cannot use, in a module of its own that imports nothing, so that
every module that raises or catches it (api, interpolation, posterior, quality, reporting) can import it without
loading the api or torch.

The other errors the API raises live beside the code that raises them: ConfigError (seqvae.config),
CheckpointError (seqvae.checkpoint), DecodingError (seqvae.decodestep). All four are exported by `seqvae`.
"""


class InputError(ValueError):
    """Input the API cannot use: an empty sentence, a method the model lacks (one-line message)."""
