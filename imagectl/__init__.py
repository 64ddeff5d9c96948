"""imagectl: the user's image tool beside the operator's registryctl (docs/images.md).

`push` takes an image from a `docker save` archive, an OCI image layout (a directory or a tar) or a
local Docker Engine and uploads it with the ECR API, in the parts InitiateLayerUpload asks for, so a
layer of any size goes up; `pull` reads one back through `/v2` into an OCI layout or an archive that
`docker load` takes; `copy` moves an image from any OCI registry into this one; `proxy` serves a
registry endpoint on loopback through which docker, containerd and skopeo push layers of any size
(imagectl/proxy).

How the modules meet, along one push: cli → sources (what is read) → push (the plan) → uploader
(one blob in parts, resumable) → ecr (the boto3 client and what its errors mean); pull and copy
read with v2; progress reports to a terminal, to plain lines or as JSON events.
"""
