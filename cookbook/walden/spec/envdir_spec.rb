# frozen_string_literal: true

RSpec.describe Walden::Envdir do
  describe '.secret?' do
    %w[AWS_SECRET_ACCESS_KEY AWS_ACCESS_KEY_ID AWS_SESSION_TOKEN AWS_SECURITY_TOKEN WABS_ACCESS_KEY SWIFT_PASSWORD
       PGPASSWORD WABS_SAS_TOKEN].each do |name|
      it("hides #{name}") { expect(described_class.secret?(name)).to be(true) }
    end

    %w[WALE_S3_PREFIX WALE_GPG_KEY_ID AWS_REGION WALDEN_RETAIN GOOGLE_APPLICATION_CREDENTIALS
       WALDEN_GPG_PASSPHRASE_PATH WALDEN_GPG_SECRET_KEY_PATH WALDEN_LOG_FILE PGDATA].each do |name|
      it("shows #{name}") { expect(described_class.secret?(name)).to be(false) }
    end

    it 'hides names listed in the attributes' do
      expect(described_class.secret?('WALE_S3_PREFIX', ['WALE_S3_PREFIX'])).to be(true)
    end
  end

  describe '.removals' do
    it 'removes what the cookbook wrote and the attributes dropped, nothing else' do
      written = %w[WALE_S3_PREFIX WALDEN_RETAIN AWS_REGION]
      expect(described_class.removals(written, %w[WALE_S3_PREFIX])).to eq(%w[AWS_REGION WALDEN_RETAIN])
      expect(described_class.removals([], %w[WALE_S3_PREFIX])).to eq([])
    end
  end

  describe 'manifest' do
    it 'lists the written names under a comment and parses back' do
      text = described_class.manifest_content(%w[WALE_S3_PREFIX AWS_REGION])
      expect(text).to start_with('# ')
      expect(text.lines.grep_v(/\A#/)).to eq(%W[AWS_REGION\n WALE_S3_PREFIX\n])
      expect(described_class.parse_manifest(text)).to eq(%w[AWS_REGION WALE_S3_PREFIX])
    end

    it 'ignores anything in it that is not a variable name' do
      expect(described_class.parse_manifest("../../etc/passwd\n.hidden\nOK_NAME\n\n")).to eq(%w[OK_NAME])
    end

    it 'is empty when absent' do
      expect(described_class.read_manifest('/nonexistent/manifest')).to eq([])
    end
  end

  describe 'files on disk' do
    around do |ex|
      Dir.mktmpdir do |d|
        @dir = d
        ex.run
      end
    end

    it 'reads values as envdir does' do
      File.write(File.join(@dir, 'A'), "lzo  \nsecond line\n")
      File.write(File.join(@dir, 'B'), '')
      expect(described_class.read_value(@dir, 'A')).to eq('lzo')
      expect(described_class.read_value(@dir, 'B')).to be_nil
      expect(described_class.read_value(@dir, 'C')).to be_nil
    end

    it 'stages existing files, minus removals, overlaid with the entries' do
      live = File.join(@dir, 'live')
      stage = File.join(@dir, 'stage')
      FileUtils.mkdir_p([live, stage])
      { 'WALE_S3_PREFIX' => "s3://old\n", 'UNMANAGED' => "keep\n", 'DROPPED' => "x\n", '.hidden' => "h\n" }
        .each { |n, c| File.write(File.join(live, n), c) }
      entries = described_class.entries('WALE_S3_PREFIX' => 's3://new', 'WALDEN_COMPRESSION' => 'lzo')
      described_class.stage!(stage, existing_dir: live, entries: entries, removals: %w[DROPPED])
      got = Dir.children(stage).sort.to_h { |n| [n, File.read(File.join(stage, n))] }
      expect(got).to eq('UNMANAGED' => "keep\n", 'WALDEN_COMPRESSION' => "lzo\n", 'WALE_S3_PREFIX' => "s3://new\n")
      expect(File.stat(stage).mode & 0o777).to eq(0o750)
      expect(Dir.children(stage).map { |n| File.stat(File.join(stage, n)).mode & 0o777 }.uniq).to eq([0o640])
    end
  end
end
