# A catalogue of one block with an object outside the Installation's
# namespace: a ConfigMap in kix-test-outside.
{ }:
{
  outside = {
    version = "1.0";
    description = "A ConfigMap here and one in namespace kix-test-outside";
    manifests = builtins.toFile "outside.json" (
      builtins.toJSON [
        {
          apiVersion = "v1";
          kind = "ConfigMap";
          metadata.name = "here";
          data.a = "b";
        }
        {
          apiVersion = "v1";
          kind = "ConfigMap";
          metadata = {
            name = "there";
            namespace = "kix-test-outside";
          };
          data.a = "b";
        }
      ]
    );
  };
}
